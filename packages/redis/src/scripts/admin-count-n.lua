--[[
  Counts records by state, for operators (stats). Changes nothing. Not on the hot path.
  Every key of one call lives in one hash slot (one scope).

  Input:
    KEYS[1..N] record keys
    ARGV       none

  Output: in-progress, completed, failed, released (tombstones), in-progress with an expired lease,
  suspect. Keys that are missing, not a hash or not a record are not counted.
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local inProgress, completed, failed, released, expired, suspect = 0, 0, 0, 0, 0, 0
for i = 1, #KEYS do
  local key = KEYS[i]
  if redis.call('TYPE', key)['ok'] == 'hash' then
    local r = redis.call('HMGET', key, 's', 'l', 'x')
    local state = r[1]
    local counted = true
    if state == '1' then
      inProgress = inProgress + 1
      local leaseUntil = tonumber(r[2])
      if leaseUntil and leaseUntil <= now then expired = expired + 1 end
    elseif state == '2' then
      completed = completed + 1
    elseif state == '3' then
      failed = failed + 1
    elseif state == '0' then
      released = released + 1
    else
      counted = false
    end
    if counted and r[3] == '1' then suspect = suspect + 1 end
  end
end
return { inProgress, completed, failed, released, expired, suspect }
