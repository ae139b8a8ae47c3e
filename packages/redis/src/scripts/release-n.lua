--[[
  Releases a batch of owned claims. Every key of one call must live in one hash slot (one scope).

  Input:
    KEYS[1..N] record keys
    ARGV[1..N] tokens, in KEYS order

  Output: array of N values, 1 ok, 0 lease lost
]]
--- @include "record"
--- @include "release-key"

local out = {}
for i = 1, #KEYS do
  out[i] = releaseKey(KEYS[i], ARGV[i])
end
return out
