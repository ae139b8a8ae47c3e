-- onceonly PostgreSQL store, schema version 1: records public.onceonly_records, marks public.onceonly_marks.
-- Idempotent: safe to run again. The schema must exist already.

-- One row per (scope, id). state: 0 released (reads as absent, keeps the token), 1 in progress,
-- 2 completed, 3 failed. A row whose expires_at has passed reads as absent, whatever its state.
CREATE TABLE IF NOT EXISTS "public"."onceonly_records" (
  token       bigint      NOT NULL, -- fencing token of the latest claim; grows with every claim
  claimed_at  timestamptz NOT NULL, -- when the latest claim was made (database clock, whole ms)
  updated_at  timestamptz NOT NULL, -- when the record reached its state
  lease_until timestamptz NOT NULL, -- in progress: when the lease runs out unless extended
  expires_at  timestamptz NOT NULL, -- when the record is forgotten (window end; at least the lease)
  state       smallint    NOT NULL CHECK (state BETWEEN 0 AND 3),
  suspect     boolean     NOT NULL DEFAULT false, -- an owner may have run the handler: next claim is a takeover
  scope       text        COLLATE "C" NOT NULL,
  id          text        COLLATE "C" NOT NULL,
  fingerprint text,                 -- payload fingerprint given at claim time
  result      text,                 -- completed: the serialised result, when results are recorded
  error       text,                 -- failed: the error code or name
  PRIMARY KEY (scope, id)
) WITH (fillfactor = 90);

-- Makes prune() cheap: expired rows are found in expiry order without a scan.
CREATE INDEX IF NOT EXISTS "onceonly_records_expires_at_idx" ON "public"."onceonly_records" (expires_at);

-- Offset high-water marks: the inclusive range [low, high] of completed positions per (scope, name).
CREATE TABLE IF NOT EXISTS "public"."onceonly_marks" (
  scope      text        COLLATE "C" NOT NULL,
  name       text        COLLATE "C" NOT NULL,
  low        bigint      NOT NULL,
  high       bigint      NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (scope, name),
  CHECK (low <= high)
);
