--[[
  Completes a batch of owned claims and, when every one succeeded, advances an offset high-water mark
  over the run from..to, in one step. All keys of one call live in one hash slot (one scope).

  Input:
    KEYS[1]      mark key
    KEYS[2..N+1] record keys
    ARGV[1]      '1' advance the mark, '0' leave it
    ARGV[2]      from: first position of the run of completed positions
    ARGV[3]      to: last position of the run
    ARGV[4]      windowMs: the same for every record of the call
    ARGV[5]      '' when no record has a result, else one character per record key: '1' result given, '0' none
    ARGV[6..N+5] tokens, in record key order
    ARGV[N+6..]  the results given, in record key order

  The run extends the mark when it touches or overlaps it; a run after a gap replaces it (positions in
  the gap were never seen completed); a run wholly below it leaves it as it is.

  Output: N values (1 ok, 0 lease lost) in KEYS order, then mark low, mark high (false when none).
]]
--- @include "now"
--- @include "record"
--- @include "finish-key"
--- @include "mark"

local window, given = ARGV[4], ARGV[5]
local out = {}
local all = true
local r = #KEYS + 4
for i = 2, #KEYS do
  local result = nil
  if given ~= '' and string.byte(given, i - 1) == 49 then
    r = r + 1
    result = ARGV[r]
  end
  out[i - 1] = finishKey(KEYS[i], ARGV[i + 4], 2, window, result)
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
