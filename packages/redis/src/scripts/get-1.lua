--[[
  Reads a record without changing it. A script rather than GET because an expired lease is judged by
  the server clock, and a record of the earlier layout (a hash) is converted.

  Input:
    KEYS[1] record key

  Output:
    nil when absent, released (tombstone) or in progress with an expired lease; else the record's
    value (see includes/record.lua)
]]
--- @include "now"
--- @include "record"

local v = fetch(KEYS[1])
if not v then return nil end
local state, _, _, _, _, l = readRecord(v)
if state == 0 or (state == 1 and l <= now) then return nil end
return v
