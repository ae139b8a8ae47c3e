-- The scope's epoch: a string key without expiry in the scope's hash slot (`<prefix>:{<scope>}:!epoch`,
-- a name no record or mark key can take), written once by the first claim that finds it missing.
-- A store that remembers another epoch, or that saw one before and now finds it missing, knows that
-- Redis forgot the scope (restart without persistence, FLUSHALL, failover to an empty replica).
-- Answers the epoch found, or false when this call wrote `candidate`. Read-only when it exists.
local function checkEpoch(key, candidate)
  local epoch = redis.call('GET', key)
  if epoch then return epoch end
  redis.call('SET', key, candidate)
  return false
end
