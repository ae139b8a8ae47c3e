--[[
  Reads an offset high-water mark and claims, in one step, every record whose position lies outside
  it. All keys of one call live in one hash slot (one scope).

  Input:
    KEYS[1]      mark key
    KEYS[2..N+1] record keys
    ARGV[1]      '1' skip positions inside the mark, '0' claim every key (reprocess)
    ARGV, 5 per record key after ARGV[1] (record i uses ARGV[5i-3 .. 5i+1]):
      leaseMs, windowMs, '1'|'0' (fingerprint given), fingerprint ('' when none), position

  Output (flat array): mark low, mark high (false when there is no mark), then one answer per record
  key, in KEYS order: 5 (inside the mark, not claimed; 1 value), or an answer as in claim-1.lua.
]]
--- @include "now"
--- @include "record"
--- @include "claim-key"
--- @include "mark"

local low, high = readMark(KEYS[1])
local out = {}
if low then
  out[1] = low
  out[2] = high
else
  out[1] = false
  out[2] = false
end
local n = 2
local skip = ARGV[1] == '1' and low ~= nil
for i = 2, #KEYS do
  local a = i * 5 - 8
  local position = tonumber(ARGV[a + 4])
  if skip and position >= low and position <= high then
    n = n + 1
    out[n] = 5
  else
    n = claimKey(KEYS[i], tonumber(ARGV[a]), tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3], out, n)
  end
end
return out
