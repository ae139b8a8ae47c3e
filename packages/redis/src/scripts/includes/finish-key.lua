-- Completes (state 2, `extra` the result or nil) or fails (state 3, `extra` the error code) an owned
-- claim, and keeps the record windowMs from now. The lease and the suspect flag are dropped: a
-- finished record is never claimed again. Commands: GET, SET.
-- Returns 1, or 0 ("lease lost") when the record is not in progress or holds another token. An
-- expired lease that nobody took over still belongs to the caller.
-- `token` and `window` are the ARGV strings.
local function finishKey(key, token, state, window, extra)
  local v = fetch(key)
  if not v then return 0 end
  local current, _, t, c, _, _, fpFlags, fp = readRecord(v)
  if current ~= 1 or tokenText(t) ~= token then return 0 end
  redis.call('SET', key, writeRecord(state, false, t, c, now, nil, fpFlags, fp, extra), 'PX', window)
  return 1
end
