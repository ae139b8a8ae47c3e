-- Claims one key and appends the answer to `out` at `n`; returns the new length.
--   acquired: 1, token, takeover (1 when a live owner's lease had expired, else 0), leaseUntil
--   found:    see pushRecord (7 values)
-- A record is acquired when absent, a tombstone (released) or in progress with an expired lease.
-- The new token is the previous one + 1, or the time seed when there is no record at all.
local function claimKey(key, leaseMs, windowMs, hasFingerprint, fingerprint, out, n)
  local r = redis.call('HMGET', key, 's', 't', 'c', 'u', 'l', 'f', 'r', 'e')
  local state = r[1]
  local takeover = 0
  if state == '1' then
    if tonumber(r[5]) > now then return pushRecord(out, n, 2, r) end
    takeover = 1
  elseif state == '2' then
    return pushRecord(out, n, 3, r)
  elseif state == '3' then
    return pushRecord(out, n, 4, r)
  end

  local token = seed
  if r[2] then token = tonumber(r[2]) + 1 end
  local leaseUntil = now + leaseMs
  if hasFingerprint == '1' then
    redis.call('HSET', key, 's', '1', 't', int(token), 'c', nowText, 'u', nowText, 'l', int(leaseUntil),
      'f', fingerprint)
  else
    redis.call('HSET', key, 's', '1', 't', int(token), 'c', nowText, 'u', nowText, 'l', int(leaseUntil))
    -- A previous claim's fingerprint must not leak into this one.
    if r[6] then redis.call('HDEL', key, 'f') end
  end
  -- Kept for the window (at least the lease) so the token survives a release or an expired lease.
  redis.call('PEXPIRE', key, int(math.max(windowMs, leaseMs)))

  out[n + 1] = 1
  out[n + 2] = token
  out[n + 3] = takeover
  out[n + 4] = leaseUntil
  return n + 4
end
