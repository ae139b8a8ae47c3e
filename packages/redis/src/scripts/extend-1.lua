--[[
  Extends an owned lease.

  Input:
    KEYS[1] record key
    ARGV[1] token
    ARGV[2] leaseMs: the lease runs until now + leaseMs (it is never shortened)

  Output: 1 ok, 0 lease lost
]]
--- @include "now"
--- @include "record"
--- @include "extend-key"

return extendKey(KEYS[1], ARGV[1], tonumber(ARGV[2]))
