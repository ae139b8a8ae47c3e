--[[
  Records a terminal failure of an owned claim; the record is kept windowMs from now.

  Input:
    KEYS[1] record key
    ARGV[1] token
    ARGV[2] windowMs
    ARGV[3] error code or name (never a message: it may carry payload data)

  Output: 1 ok, 0 lease lost
]]
--- @include "now"
--- @include "record"
--- @include "finish-key"

return finishKey(KEYS[1], ARGV[1], 3, ARGV[2], ARGV[3])
