-- Completes (state '2', `field` 'r', `value` the result or false) or fails (state '3', `field` 'e',
-- `value` the error code) an owned claim, and keeps the record windowMs from now.
-- Returns 1, or 0 ("lease lost") when the record is not in progress or holds another token. An
-- expired lease that nobody took over still belongs to the caller.
-- No stale 'r'/'e' can be left over: a record with either is finished and never claimed again.
local function finishKey(key, token, state, windowMs, field, value)
  local r = redis.call('HMGET', key, 's', 't', 'x')
  if r[1] ~= '1' or r[2] ~= token then return 0 end
  -- A finished record is never claimed again: the suspect mark has done its work.
  if r[3] then redis.call('HDEL', key, 'x') end
  if value then
    redis.call('HSET', key, 's', state, 'u', nowText, field, value)
  else
    redis.call('HSET', key, 's', state, 'u', nowText)
  end
  redis.call('PEXPIRE', key, int(windowMs))
  return 1
end
