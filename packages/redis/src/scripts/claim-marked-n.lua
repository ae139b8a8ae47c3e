--[[
  Reads an offset high-water mark, checks the scope's epoch and claims, in one step, every record
  whose position lies outside the mark. All keys of one call live in one hash slot (one scope).

  Input:
    KEYS[1]      mark key
    KEYS[2]      the scope's epoch key
    KEYS[3..N+2] record keys
    ARGV[1]      '1' skip positions inside the mark, '0' claim every key (reprocess)
    ARGV[2]      epoch to write when the scope has none
    ARGV[3]      leaseMs, ARGV[4] windowMs: the same for every record of the call
    ARGV[5]      the records' fingerprints, in KEYS order (see nextFingerprint; '' when none has one)
    ARGV[6..N+5] the records' positions, in KEYS order

  Output (flat array): the scope's epoch (false when this call wrote ARGV[2]), now (ms), the time
  seed (µs), mark low, mark high (false when there is no mark), then one answer per record key, in
  KEYS order: 5 (inside the mark, not claimed), or an answer as in claim-2.lua.
]]
--- @include "now"
--- @include "record"
--- @include "epoch"
--- @include "claim-key"
--- @include "mark"

local low, high = readMark(KEYS[1])
local out = { checkEpoch(KEYS[2], ARGV[2]), now, seed }
if low then
  out[4] = low
  out[5] = high
else
  out[4] = false
  out[5] = false
end
local n = 5
local skip = ARGV[1] == '1' and low ~= nil
local lease, window, fingerprints = ARGV[3], ARGV[4], ARGV[5]
local at = 1
for i = 3, #KEYS do
  -- Read for every record, claimed or not: they come one after another.
  local fingerprint = ''
  if fingerprints ~= '' then fingerprint, at = nextFingerprint(fingerprints, at) end
  local position = tonumber(ARGV[i + 3])
  if skip and position >= low and position <= high then
    n = n + 1
    out[n] = 5
  else
    n = claimKey(KEYS[i], lease, window, fingerprint, out, n)
  end
end
return out
