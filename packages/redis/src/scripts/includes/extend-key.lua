-- Extends an owned lease to now + leaseMs (never shortens it) and keeps the key at least that long.
-- Returns 1, or 0 ("lease lost") when the record is not in progress or holds another token (compared
-- as decimal strings, exactly). A lease that expired without anyone claiming the ID is still the
-- caller's: nobody bumped the token.
local function extendKey(key, token, leaseMs)
  local r = redis.call('HMGET', key, 's', 't', 'l')
  if r[1] ~= '1' or r[2] ~= token then return 0 end
  local leaseUntil = now + leaseMs
  if leaseUntil > tonumber(r[3]) then redis.call('HSET', key, 'l', int(leaseUntil)) end
  if redis.call('PTTL', key) < leaseMs then redis.call('PEXPIRE', key, int(leaseMs)) end
  return 1
end
