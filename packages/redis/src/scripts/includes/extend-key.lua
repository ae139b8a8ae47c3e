-- Extends an owned lease to now + leaseMs (never shortens it) and keeps the key at least that long.
-- Returns 1, or 0 ("lease lost") when the record is not in progress or holds another token (compared
-- as decimal strings, exactly). A lease that expired without anyone claiming the ID is still the
-- caller's: nobody bumped the token.
local function extendKey(key, token, leaseMs)
  local v = fetch(key)
  if not v then return 0 end
  local state, suspect, t, c, u, l, fpFlags, fp = readRecord(v)
  if state ~= 1 or tokenText(t) ~= token then return 0 end
  local leaseUntil = math.max(l, now + leaseMs)
  local value = writeRecord(1, suspect, t, c, u, leaseUntil, fpFlags, fp, nil)
  if redis.call('PTTL', key) < leaseMs then
    redis.call('SET', key, value, 'PX', int(leaseMs))
  elseif leaseUntil ~= l then
    redis.call('SET', key, value, 'KEEPTTL')
  end
  return 1
end
