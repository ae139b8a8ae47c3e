-- Offset high-water mark: a hash with `l` (low) and `h` (high), the inclusive range of completed
-- positions of one (scope, name). It has no expiry: it must outlive the ID records' window.
local function readMark(key)
  local m = redis.call('HMGET', key, 'l', 'h')
  if m[1] and m[2] then return tonumber(m[1]), tonumber(m[2]) end
  return nil, nil
end
