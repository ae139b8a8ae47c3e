import type { Pool } from 'pg';
import { qualify, type TableNames } from './sql.js';

/** Schema version: bumped (with an upgrade script in `sql/`) whenever the tables change. */
export const SCHEMA_VERSION = 1;

/** The default names: `public.onceonly_records` and `public.onceonly_marks`. */
export const DEFAULT_TABLE_NAMES: TableNames = { schema: 'public', table: 'onceonly_records', marksTable: 'onceonly_marks' };

// pg_advisory_xact_lock(classid, objid): classid is 'once' in ASCII, objid hashes the table name, so
// concurrent migrations of one table wait for each other and other tables' migrations do not.
const MIGRATION_LOCK_CLASS = 0x6f6e6365;

/**
 * The DDL that creates the store's tables and index, idempotent (`IF NOT EXISTS`). With the default
 * names it is `sql/schema.sql`, shipped in the package for your own migrations (written from this
 * function by `npm run schema:sql`; a unit test fails while the two differ).
 *
 * Records: one row per (scope, id), primary key (scope, id), `COLLATE "C"` (byte order: fast, and
 * immune to operating-system collation changes that corrupt text indexes). Fixed-width columns come
 * first so that no row carries alignment padding. Expired rows read as absent; `prune()` deletes them
 * through the `expires_at` index. Marks: one row per (scope, name), never expiring.
 *
 * @example
 * import { schemaSql } from '@onceonly/postgres';
 * writeFileSync('migrations/042_onceonly.sql', schemaSql({ schema: 'app', table: 'dedup', marksTable: 'dedup_marks' }));
 */
export function schemaSql(names: TableNames = DEFAULT_TABLE_NAMES): string {
  const q = qualify(names);
  return `-- onceonly PostgreSQL store, schema version ${SCHEMA_VERSION}: records ${q.display}, marks ${q.marksDisplay}.
-- Idempotent: safe to run again. The schema must exist already.

-- One row per (scope, id). state: 0 released (reads as absent, keeps the token), 1 in progress,
-- 2 completed, 3 failed. A row whose expires_at has passed reads as absent, whatever its state.
CREATE TABLE IF NOT EXISTS ${q.records} (
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
CREATE INDEX IF NOT EXISTS ${q.expiresIndex} ON ${q.records} (expires_at);

-- Offset high-water marks: the inclusive range [low, high] of completed positions per (scope, name).
CREATE TABLE IF NOT EXISTS ${q.marks} (
  scope      text        COLLATE "C" NOT NULL,
  name       text        COLLATE "C" NOT NULL,
  low        bigint      NOT NULL,
  high       bigint      NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (scope, name),
  CHECK (low <= high)
);
`;
}

/**
 * Creates the tables and index when they do not exist, in one transaction under an advisory lock, so
 * that any number of workers may call it at once (a bare `CREATE TABLE IF NOT EXISTS` can fail when
 * two sessions run it together). Needs CREATE on the schema; the schema itself must exist.
 */
export async function migrate(pool: Pool, names: TableNames = DEFAULT_TABLE_NAMES): Promise<void> {
  const client = await pool.connect();
  // A connection whose state is in doubt is closed rather than handed to the next caller.
  let healthy = false;
  try {
    await client.query('BEGIN');
    healthy = true;
    await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [MIGRATION_LOCK_CLASS, qualify(names).display]);
    await client.query(schemaSql(names)); // several statements: the simple protocol (no parameters)
    await client.query('COMMIT');
  } catch (error) {
    if (healthy) await client.query('ROLLBACK').catch(() => (healthy = false));
    throw error;
  } finally {
    client.release(!healthy);
  }
}
