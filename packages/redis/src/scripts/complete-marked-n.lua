--[[
  Completes a batch of owned claims and, when every one succeeded, advances an offset high-water mark
  over the run from..to, in one step. All keys of one call live in one hash slot (one scope).

  Input:
    KEYS[1]      mark key
    KEYS[2..N+1] record keys
    ARGV[1]      '1' advance the mark, '0' leave it
    ARGV[2]      from: first position of the run of completed positions
    ARGV[3]      to: last position of the run
    ARGV, 4 per record key after ARGV[3]: token, windowMs, '1'|'0' (result given), result ('' when none)

  The run extends the mark when it touches or overlaps it; a run after a gap replaces it (positions in
  the gap were never seen completed); a run wholly below it leaves it as it is.

  Output: N values (1 ok, 0 lease lost) in KEYS order, then mark low, mark high (false when none).
]]
--- @include "now"
--- @include "record"
--- @include "finish-key"
--- @include "mark"

local out = {}
local all = true
for i = 2, #KEYS do
  local a = i * 4 - 4
  local result = nil
  if ARGV[a + 2] == '1' then result = ARGV[a + 3] end
  out[i - 1] = finishKey(KEYS[i], ARGV[a], 2, ARGV[a + 1], result)
  if out[i - 1] == 0 then all = false end
end

local low, high = readMark(KEYS[1])
if ARGV[1] == '1' and all then
  local from = tonumber(ARGV[2])
  local to = tonumber(ARGV[3])
  if low and from <= high + 1 and to >= low - 1 then
    low = math.min(low, from)
    high = math.max(high, to)
  elseif not low or to >= low then
    low = from
    high = to
  end
  redis.call('HSET', KEYS[1], 'l', int(low), 'h', int(high))
end
local n = #KEYS - 1
if low then
  out[n + 1] = low
  out[n + 2] = high
else
  out[n + 1] = false
  out[n + 2] = false
end
return out
