-- Claims one key and appends the answer to `out` at `n`; returns the new length.
--   acquired, first claim: 1 (token: the call's seed; no takeover; lease until now + leaseMs)
--   acquired over a record: 3, token, takeover (1 when the record is suspect, else 0)
--   found: 2, the record's value (in-progress with a live lease, completed or failed)
-- A record is acquired when absent, a tombstone (released) or in progress with an expired lease.
-- Suspect: an owner's lease expired (now, or before a release since): it may have run the handler.
-- The new claim carries the suspect flag until a completion or failure, so releasing it keeps it.
-- The new token is the previous one + 1, or the time seed when there is no record at all.
-- `fingerprint` is '' or the client's encoding: one flag byte (8, or 24 when packed), then the bytes.
-- Commands: SET NX GET for a new ID; GET and SET to take over; GET for a duplicate. The key is kept
-- for the window, at least the lease, so the token survives a release or an expired lease.
-- The value of a first claim shares its middle (token = seed, claimedAt = updatedAt = now) with every
-- first claim of the call that has the same lease: built once per lease.
local firstClaims = {}
-- SET with both NX and GET: Redis 7.0 or later.
local NX_GET = (redis.REDIS_VERSION_NUM or 0) >= 458752

-- `lease` and `window` are the ARGV strings (ms); `fingerprint` as above.
local function claimKey(key, lease, window, fingerprint, out, n)
  local fpFlags, fp = 0, ''
  if #fingerprint > 0 then
    fpFlags = string.byte(fingerprint, 1)
    fp = string.sub(fingerprint, 2)
  end
  local leaseMs = tonumber(lease)
  local ttl = window
  if leaseMs > tonumber(window) then ttl = lease end
  local leaseUntil = now + leaseMs
  local middle = firstClaims[lease]
  if not middle then
    middle = string.sub(writeRecord(1, false, seed, now, now, leaseUntil, 0, '', nil), 2)
    firstClaims[lease] = middle
  end
  -- One command when the ID is new: SET NX GET writes the first claim, or answers the record there
  -- (and writes nothing). Before Redis 7 (no NX with GET), under OOM (a duplicate still needs no
  -- write) and for a hash of the earlier layout, it fails, and the record is read first.
  local v = false
  if NX_GET then v = redis.pcall('SET', key, string.char(65 + fpFlags) .. middle .. fp, 'NX', 'GET', 'PX', ttl) end
  if not NX_GET or type(v) == 'table' then
    v = fetch(key)
    if not v then redis.call('SET', key, string.char(65 + fpFlags) .. middle .. fp, 'PX', ttl) end
  end
  if not v then
    out[n + 1] = 1
    return n + 1
  end
  local state, suspect, t, _, _, l = readRecord(v)
  if state >= 2 or (state == 1 and l > now) then
    out[n + 1] = 2
    out[n + 2] = v
    return n + 2
  end
  local token = t + 1
  local takeover = state == 1 or suspect
  redis.call('SET', key, writeRecord(1, takeover, token, now, now, leaseUntil, fpFlags, fp, nil), 'PX', ttl)
  out[n + 1] = 3
  out[n + 2] = token
  if takeover then out[n + 3] = 1 else out[n + 3] = 0 end
  return n + 3
end

-- A batch's fingerprints come in one argument: per record, in KEYS order, a zero byte (none) or the
-- encoding above (flag 24: 17 bytes follow; flag 8: a varint length and the bytes). Answers the
-- fingerprint that starts at `pos` ('' for none) and where the next one starts.
local function nextFingerprint(fingerprints, pos)
  local flags = string.byte(fingerprints, pos)
  if flags == 0 then return '', pos + 1 end
  if flags == 24 then return string.sub(fingerprints, pos, pos + 17), pos + 18 end
  if flags ~= 8 then error('onceonly: a fingerprint argument is malformed') end
  local length, at = readVarint(fingerprints, pos + 1)
  return string.sub(fingerprints, pos, at + length - 1), at + length
end
