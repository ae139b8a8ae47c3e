import { PostgresStore } from '@onceonly/postgres';
import pg from 'pg';

/** The BullMQ queue, and the onceonly scope of its records. */
export const QUEUE = 'payments';
/** The example's own schema: the ledger and the onceonly tables live side by side in it. */
export const SCHEMA = 'onceonly_example';
export const LEDGER = `${SCHEMA}.ledger`;

/** A payment job's data. */
export type Payment = { account: string; cents: number };

/** What the worker's handler returns, recorded by onceonly and returned again for duplicates. */
export type Booked = { entry: string; by: number };

/** The URLs the worker and producer need, or a clear message and exit code 2. */
export function urlsFromEnv(program: string): { databaseUrl: string; redisUrl: string } {
  const databaseUrl = process.env['DATABASE_URL'];
  const redisUrl = process.env['REDIS_URL'];
  if (!databaseUrl || !redisUrl) {
    console.error(
      `${program}: set DATABASE_URL (a PostgreSQL the example may create the schema "${SCHEMA}" in) and REDIS_URL (for BullMQ), e.g.\n` +
        `  DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379 npm run ${program} -w examples/postgres-ledger\n` +
        `or run "npm run crash-demo -w examples/postgres-ledger", which starts throwaway servers when they are not set.`,
    );
    process.exit(2);
  }
  return { databaseUrl, redisUrl };
}

/**
 * A pool for `concurrency` handlers: each holds a connection (its transaction) while it runs, and
 * claims and heartbeats need room beside them. Pipelined: the store then sends BEGIN with the
 * handler's first statement and the completion with the COMMIT (3 round trips a job, not 5).
 */
export function createPool(url: string, concurrency: number): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: concurrency + 3, connectionTimeoutMillis: 5_000, pipeline: true });
  pool.on('error', () => {}); // an idle connection dropped: the next call reports the outage
  return pool;
}

/** Creates the schema, the onceonly tables and the ledger, if they do not exist (idempotent). */
export async function migrate(pool: pg.Pool): Promise<PostgresStore> {
  await pool.query(`CREATE SCHEMA IF NOT EXISTS ${SCHEMA}`);
  const store = new PostgresStore({ pool, schema: SCHEMA });
  await store.migrate();
  // An append-only ledger, on purpose without a unique key on message_id: a duplicate effect would
  // show up as a second row instead of being refused.
  await pool.query(`CREATE TABLE IF NOT EXISTS ${LEDGER} (
    entry bigserial PRIMARY KEY,
    message_id text NOT NULL,
    account text NOT NULL,
    cents integer NOT NULL,
    fence bigint NOT NULL,
    booked_at timestamptz NOT NULL DEFAULT now()
  )`);
  return store;
}

/** Ledger rows, distinct messages among them, and the messages booked more than once. */
export async function ledgerCounts(pool: pg.Pool): Promise<{ rows: number; messages: number; duplicated: number }> {
  const { rows } = await pool.query<{ rows: number; messages: number; duplicated: number }>(
    `SELECT count(*)::int AS rows, count(DISTINCT message_id)::int AS messages,
       (SELECT count(*)::int FROM (SELECT 1 FROM ${LEDGER} GROUP BY message_id HAVING count(*) > 1) AS d) AS duplicated
     FROM ${LEDGER}`,
  );
  return rows[0]!;
}
