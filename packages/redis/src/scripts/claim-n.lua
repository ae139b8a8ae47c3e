--[[
  Claims a batch of IDs in one step and checks the scope's epoch. Every key of one call lives in one
  hash slot (one scope).

  Input:
    KEYS[1]      the scope's epoch key
    KEYS[2..N+1] record keys
    ARGV[1]      epoch to write when the scope has none
    ARGV, 3 per record key after ARGV[1] (record key i uses ARGV[3i-1 .. 3i+1]):
      leaseMs, windowMs, fingerprint ('' when none)

  Output (flat array): the scope's epoch (false when this call wrote ARGV[1]), now (ms), the time
  seed (µs), then one answer per record key, in KEYS order, as in claim-2.lua: 1 (a first claim),
  3, token, takeover (acquired over a record), or 2, value (found).
]]
--- @include "now"
--- @include "record"
--- @include "epoch"
--- @include "claim-key"

local out = { checkEpoch(KEYS[1], ARGV[1]), now, seed }
local n = 3
for i = 2, #KEYS do
  local a = i * 3 - 4
  n = claimKey(KEYS[i], ARGV[a], ARGV[a + 1], ARGV[a + 2], out, n)
end
return out
