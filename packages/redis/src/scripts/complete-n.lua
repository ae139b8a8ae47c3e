--[[
  Completes a batch of owned claims. Every key of one call must live in one hash slot (one scope).

  Input:
    KEYS[1..N] record keys
    ARGV[1]      windowMs: the same for every record of the call
    ARGV[2]      '' when no record has a result, else one character per key: '1' result given, '0' none
    ARGV[3..N+2] tokens, in KEYS order
    ARGV[N+3..]  the results given, in KEYS order

  Output: array of N values, 1 ok, 0 lease lost
]]
--- @include "now"
--- @include "record"
--- @include "finish-key"

local window, given = ARGV[1], ARGV[2]
local out = {}
local r = #KEYS + 2
for i = 1, #KEYS do
  local result = nil
  if given ~= '' and string.byte(given, i) == 49 then
    r = r + 1
    result = ARGV[r]
  end
  out[i] = finishKey(KEYS[i], ARGV[i + 2], 2, window, result)
end
return out
