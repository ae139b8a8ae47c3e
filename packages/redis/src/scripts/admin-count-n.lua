--[[
  Counts records by state, for operators (stats). Changes nothing. Not on the hot path.
  Every key of one call lives in one hash slot (one scope).

  Input:
    KEYS[1..N] record keys
    ARGV       none

  Output: in-progress, completed, failed, released (tombstones), in-progress with an expired lease,
  suspect. Keys that are missing or not a record (of either layout) are not counted.
]]
--- @include "record"

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local counts = { 0, 0, 0, 0, 0, 0 }
local slot = { [1] = 1, [2] = 2, [3] = 3, [0] = 4 }
for i = 1, #KEYS do
  local key = KEYS[i]
  local kind = redis.call('TYPE', key)['ok']
  local v = false
  if kind == 'string' then
    v = redis.call('GET', key)
  elseif kind == 'hash' then
    v = fromHash(redis.call('HMGET', key, 's', 't', 'c', 'u', 'l', 'f', 'r', 'e', 'x'))
  end
  if v then
    local ok, state, suspect, _, _, _, l = pcall(readRecord, v)
    if ok then
      counts[slot[state]] = counts[slot[state]] + 1
      if state == 1 and l <= now then counts[5] = counts[5] + 1 end
      if suspect then counts[6] = counts[6] + 1 end
    end
  end
end
return counts
