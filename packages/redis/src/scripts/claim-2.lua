--[[
  Claims one ID in one step, whatever the outcome, and checks the scope's epoch.

  Input:
    KEYS[1] the scope's epoch key
    KEYS[2] record key
    ARGV[1] epoch to write when the scope has none
    ARGV[2] leaseMs
    ARGV[3] windowMs: how long the record (and so its token) is kept, at least leaseMs
    ARGV[4] fingerprint as the client encodes it ('' when none)

  Output (flat array): the scope's epoch (false when this call wrote ARGV[1]), the server time
  (now, ms), the time seed (µs), then
    acquired, a first claim: 1 (the token is the seed; no takeover; the lease runs until now + leaseMs)
    acquired over a record:  3, token, takeover (0|1) (the lease runs until now + leaseMs)
    found:                   2, the record's value (see includes/record.lua)
]]
--- @include "now"
--- @include "record"
--- @include "epoch"
--- @include "claim-key"

local out = { checkEpoch(KEYS[1], ARGV[1]), now, seed }
claimKey(KEYS[2], ARGV[2], ARGV[3], ARGV[4], out, 3)
return out
