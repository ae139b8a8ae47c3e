--[[
  Claims a batch of IDs in one step and checks the scope's epoch. Every key of one call lives in one
  hash slot (one scope).

  Input:
    KEYS[1]      the scope's epoch key
    KEYS[2..N+1] record keys
    ARGV[1]      epoch to write when the scope has none
    ARGV[2]      leaseMs, ARGV[3] windowMs: the same for every record of the call
    ARGV[4]      the records' fingerprints, in KEYS order (see nextFingerprint; '' when none has one)

  Output (flat array): the scope's epoch (false when this call wrote ARGV[1]), now (ms), the time
  seed (µs), then one answer per record key, in KEYS order, as in claim-2.lua: 1 (a first claim),
  3, token, takeover (acquired over a record), or 2, value (found).
]]
--- @include "now"
--- @include "record"
--- @include "epoch"
--- @include "claim-key"

local lease, window, fingerprints = ARGV[2], ARGV[3], ARGV[4]
local out = { checkEpoch(KEYS[1], ARGV[1]), now, seed }
local n, at = 3, 1
for i = 2, #KEYS do
  local fingerprint = ''
  if fingerprints ~= '' then fingerprint, at = nextFingerprint(fingerprints, at) end
  n = claimKey(KEYS[i], lease, window, fingerprint, out, n)
end
return out
