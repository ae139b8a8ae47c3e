--[[
  Reads records as they are, for operators (inspect, list). Changes nothing. Not on the hot path.
  Every key of one call lives in one hash slot (one scope).

  Input:
    KEYS[1..N] record keys
    ARGV       none

  Output (flat array): the server time (ms), then 2 values per key in KEYS order: the record's value
  (see includes/record.lua; a hash of the earlier layout converted), and its PTTL (ms; -1 no expiry).
  A key that is missing, or not a record, answers false, false.
]]
--- @include "record"

local time = redis.call('TIME')
local out = { tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) }
local n = 1
for i = 1, #KEYS do
  local key = KEYS[i]
  local kind = redis.call('TYPE', key)['ok']
  local v = false
  if kind == 'string' then
    v = redis.call('GET', key)
    if not pcall(readRecord, v) then v = false end
  elseif kind == 'hash' then
    v = fromHash(redis.call('HMGET', key, 's', 't', 'c', 'u', 'l', 'f', 'r', 'e', 'x'))
  end
  out[n + 1] = v
  if v then out[n + 2] = redis.call('PTTL', key) else out[n + 2] = false end
  n = n + 2
end
return out
