-- Releases an owned claim: the record becomes a tombstone (state 0) that reads as absent but keeps
-- its token, its suspect flag and its expiry, so the next claim gets a higher token and, when the
-- claim was suspect, is still a takeover. Returns 1, or 0 ("lease lost") when the record is not in
-- progress or holds another token. Needs no clock. Commands: GET, SET.
local function releaseKey(key, token)
  local v = fetch(key)
  if not v then return 0 end
  local state, suspect, t, c, u, l, fpFlags, fp = readRecord(v)
  if state ~= 1 or tokenText(t) ~= token then return 0 end
  redis.call('SET', key, writeRecord(0, suspect, t, c, u, l, fpFlags, fp, nil), 'KEEPTTL')
  return 1
end
