-- Record hash fields (short names keep the hashes small):
--   s  state: 0 released/expired (a tombstone that keeps the token), 1 in-progress, 2 completed, 3 failed
--   t  fencing token of the latest claim
--   c  claimedAt (ms, server clock)   u  updatedAt (ms)   l  leaseUntil (ms, read only while s = 1)
--   f  payload fingerprint (optional) r  result (completed, optional)   e  error code (failed)
--   x  suspect: '1' when an owner may have run the handler (the claim was a takeover); kept through
--      releases and expired leases until the record is completed or failed

-- Appends a found record to `out` at `n` and returns the new length:
--   code (2 in-progress | 3 completed | 4 failed), token, claimedAt, updatedAt,
--   leaseUntil or false, fingerprint or false, result (completed) / error (failed) or false.
-- `r` is the HMGET reply for s, t, c, u, l, f, r, e.
local function pushRecord(out, n, code, r)
  out[n + 1] = code
  out[n + 2] = tonumber(r[2])
  out[n + 3] = tonumber(r[3])
  out[n + 4] = tonumber(r[4])
  if code == 2 then out[n + 5] = tonumber(r[5]) else out[n + 5] = false end
  out[n + 6] = r[6] or false
  if code == 3 then out[n + 7] = r[7] or false
  elseif code == 4 then out[n + 7] = r[8] or false
  else out[n + 7] = false end
  return n + 7
end
