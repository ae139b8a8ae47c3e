--[[
  Completes an owned claim; the record is kept windowMs from now.

  Input:
    KEYS[1] record key
    ARGV[1] token
    ARGV[2] windowMs
    ARGV[3] '1' when a result is given, else '0'
    ARGV[4] result ('' when none)

  Output: 1 ok, 0 lease lost
]]
--- @include "now"
--- @include "record"
--- @include "finish-key"

local result = nil
if ARGV[3] == '1' then result = ARGV[4] end
return finishKey(KEYS[1], ARGV[1], 2, ARGV[2], result)
