--[[
  Claims a batch of IDs in one step. Every key of one call must live in one hash slot (one scope).

  Input:
    KEYS[1..N] record keys
    ARGV, 4 per key in KEYS order (key i uses ARGV[4i-3 .. 4i]):
      leaseMs, windowMs, '1'|'0' (fingerprint given), fingerprint ('' when none)

  Output (flat array): one answer per key, in KEYS order, as in claim-1.lua
    acquired: 4 values (1, token, takeover, leaseUntil); found: 7 values (code 2|3|4, ...).
]]
--- @include "now"
--- @include "record"
--- @include "claim-key"

local out = {}
local n = 0
for i = 1, #KEYS do
  local a = i * 4 - 3
  n = claimKey(KEYS[i], tonumber(ARGV[a]), tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3], out, n)
end
return out
