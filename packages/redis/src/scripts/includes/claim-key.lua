-- Claims one key and appends the answer to `out` at `n`; returns the new length.
--   acquired: 1, token, takeover (1 when the record is suspect, else 0), leaseUntil
--   found:    see pushRecord (7 values)
-- A record is acquired when absent, a tombstone (released) or in progress with an expired lease.
-- Suspect: an owner's lease expired (now, or before a release since): it may have run the handler.
-- The new claim carries the mark ('x') until a completion or failure, so releasing it keeps it suspect.
-- The new token is the previous one + 1, or the time seed when there is no record at all.
local function claimKey(key, leaseMs, windowMs, hasFingerprint, fingerprint, out, n)
  local r = redis.call('HMGET', key, 's', 't', 'c', 'u', 'l', 'f', 'r', 'e', 'x')
  local state = r[1]
  local takeover = 0
  if state == '1' then
    if tonumber(r[5]) > now then return pushRecord(out, n, 2, r) end
    takeover = 1
  elseif state == '2' then
    return pushRecord(out, n, 3, r)
  elseif state == '3' then
    return pushRecord(out, n, 4, r)
  elseif r[9] == '1' then
    takeover = 1
  end

  local token = seed
  if r[2] then token = tonumber(r[2]) + 1 end
  local leaseUntil = now + leaseMs
  local fields = { 's', '1', 't', int(token), 'c', nowText, 'u', nowText, 'l', int(leaseUntil) }
  if hasFingerprint == '1' then
    fields[11] = 'f'
    fields[12] = fingerprint
  end
  -- 'x' exists only on suspect records, so a plain claim never has one to remove.
  if takeover == 1 then
    fields[#fields + 1] = 'x'
    fields[#fields + 1] = '1'
  end
  redis.call('HSET', key, unpack(fields))
  -- A previous claim's fingerprint must not leak into this one.
  if hasFingerprint ~= '1' and r[6] then redis.call('HDEL', key, 'f') end
  -- Kept for the window (at least the lease) so the token survives a release or an expired lease.
  redis.call('PEXPIRE', key, int(math.max(windowMs, leaseMs)))

  out[n + 1] = 1
  out[n + 2] = token
  out[n + 3] = takeover
  out[n + 4] = leaseUntil
  return n + 4
end
