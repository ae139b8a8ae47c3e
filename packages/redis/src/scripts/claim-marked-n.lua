--[[
  Reads an offset high-water mark, checks the scope's epoch and claims, in one step, every record
  whose position lies outside the mark. All keys of one call live in one hash slot (one scope).

  Input:
    KEYS[1]      mark key
    KEYS[2]      the scope's epoch key
    KEYS[3..N+2] record keys
    ARGV[1]      '1' skip positions inside the mark, '0' claim every key (reprocess)
    ARGV[2]      epoch to write when the scope has none
    ARGV, 4 per record key after ARGV[2] (record key i uses ARGV[4i-9 .. 4i-6]):
      leaseMs, windowMs, fingerprint ('' when none), position

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
for i = 3, #KEYS do
  local a = i * 4 - 9
  local position = tonumber(ARGV[a + 3])
  if skip and position >= low and position <= high then
    n = n + 1
    out[n] = 5
  else
    n = claimKey(KEYS[i], ARGV[a], ARGV[a + 1], ARGV[a + 2], out, n)
  end
end
return out
