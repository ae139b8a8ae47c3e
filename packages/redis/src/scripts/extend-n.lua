--[[
  Extends a batch of owned leases. Every key of one call must live in one hash slot (one scope).

  Input:
    KEYS[1..N] record keys
    ARGV, 2 per key in KEYS order: token, leaseMs

  Output: array of N values, 1 ok, 0 lease lost
]]
--- @include "now"
--- @include "record"
--- @include "extend-key"

local out = {}
for i = 1, #KEYS do
  out[i] = extendKey(KEYS[i], ARGV[i * 2 - 1], tonumber(ARGV[i * 2]))
end
return out
