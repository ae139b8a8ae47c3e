--[[
  Claims one ID in one step, whatever the outcome.

  Input:
    KEYS[1] record key
    ARGV[1] leaseMs
    ARGV[2] windowMs: how long the record (and so its token) is kept, at least leaseMs
    ARGV[3] '1' when a fingerprint is given, else '0'
    ARGV[4] fingerprint ('' when none)

  Output (flat array):
    acquired:  1, token, takeover (0|1), leaseUntil
    found:     2 in-progress | 3 completed | 4 failed, token, claimedAt, updatedAt,
               leaseUntil (in-progress) or nil, fingerprint or nil, result (completed) / error (failed) or nil
]]
--- @include "now"
--- @include "record"
--- @include "claim-key"

local out = {}
claimKey(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4], out, 0)
return out
