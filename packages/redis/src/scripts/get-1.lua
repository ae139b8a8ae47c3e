--[[
  Reads a record without changing it. A script rather than HGETALL because an expired lease is
  judged by the server clock.

  Input:
    KEYS[1] record key

  Output:
    nil when absent, released (tombstone) or in progress with an expired lease; else the 7 values of a
    found record: code 2 in-progress | 3 completed | 4 failed, token, claimedAt, updatedAt,
    leaseUntil or nil, fingerprint or nil, result / error or nil
]]
--- @include "now"
--- @include "record"

local r = redis.call('HMGET', KEYS[1], 's', 't', 'c', 'u', 'l', 'f', 'r', 'e')
local state = r[1]
local out = {}
if state == '1' then
  if tonumber(r[5]) <= now then return nil end
  pushRecord(out, 0, 2, r)
elseif state == '2' then
  pushRecord(out, 0, 3, r)
elseif state == '3' then
  pushRecord(out, 0, 4, r)
else
  return nil
end
return out
