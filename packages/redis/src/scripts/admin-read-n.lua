--[[
  Reads records as they are, for operators (inspect, list). Changes nothing. Not on the hot path.
  Every key of one call lives in one hash slot (one scope).

  Input:
    KEYS[1..N] record keys
    ARGV       none

  Output (flat array): the server time (ms), then 10 values per key in KEYS order:
    s, t, c, u, l, f, r, e, x (the record hash fields, see includes/record.lua; false when absent),
    PTTL (ms; -1 no expiry). A key that is missing or not a hash answers 10 falses.
]]
local time = redis.call('TIME')
local out = { tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) }
local n = 1
for i = 1, #KEYS do
  local key = KEYS[i]
  if redis.call('TYPE', key)['ok'] == 'hash' then
    local r = redis.call('HMGET', key, 's', 't', 'c', 'u', 'l', 'f', 'r', 'e', 'x')
    for j = 1, 9 do out[n + j] = r[j] end
    out[n + 10] = redis.call('PTTL', key)
  else
    for j = 1, 10 do out[n + j] = false end
  end
  n = n + 10
end
return out
