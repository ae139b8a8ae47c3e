-- Server time, read once per script so that every key of a batch sees the same instant and workers
-- with skewed clocks agree. `now` (ms) judges leases. `seed` (µs) is the first fencing token of an ID
-- that has no record at all: per-ID increments alone would restart at 1 once a record's window ends,
-- and a worker stalled past the window could then match a new owner's token.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local seed = tonumber(time[1]) * 1000000 + tonumber(time[2])
