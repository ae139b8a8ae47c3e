-- Releases an owned claim: the record becomes a tombstone (state '0') that reads as absent but keeps
-- its token, its suspect mark ('x') and its expiry, so the next claim gets a higher token and, when
-- the claim was suspect, is still a takeover. Returns 1, or 0 ("lease lost")
-- when the record is not in progress or holds another token. Needs no clock.
local function releaseKey(key, token)
  local r = redis.call('HMGET', key, 's', 't')
  if r[1] ~= '1' or r[2] ~= token then return 0 end
  redis.call('HSET', key, 's', '0')
  return 1
end
