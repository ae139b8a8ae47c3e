--[[
  Releases an owned claim (retryable failure): the ID reads as absent, its token is kept.

  Input:
    KEYS[1] record key
    ARGV[1] token

  Output: 1 ok, 0 lease lost
]]
--- @include "record"
--- @include "release-key"

return releaseKey(KEYS[1], ARGV[1])
