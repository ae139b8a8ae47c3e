--[[
  Completes a batch of owned claims. Every key of one call must live in one hash slot (one scope).

  Input:
    KEYS[1..N] record keys
    ARGV, 4 per key in KEYS order: token, windowMs, '1'|'0' (result given), result ('' when none)

  Output: array of N values, 1 ok, 0 lease lost
]]
--- @include "now"
--- @include "record"
--- @include "finish-key"

local out = {}
for i = 1, #KEYS do
  local a = i * 4 - 3
  local result = nil
  if ARGV[a + 2] == '1' then result = ARGV[a + 3] end
  out[i] = finishKey(KEYS[i], ARGV[a], 2, ARGV[a + 1], result)
end
return out
