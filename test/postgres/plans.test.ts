// Query plans that hold as the table grows. A prepared statement keeps its generic plan until the
// table is analyzed again; a batch statement planned while the table was small would join the
// requests to a full scan of the table at every call, so a fresh deployment would slow down with
// every row it stores (until autovacuum's next ANALYZE). Here the statements are first used on an
// empty table, the table then grows without an ANALYZE (autovacuum off for it), and the calls that
// follow must reach rows through the primary key only: the table's sequential-scan counter must
// not move.
import type { ClaimResult } from '@onceonly/core';
import type { PostgresStore } from '@onceonly/postgres';
import type pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { sleep, usePostgres } from './postgres-test-context.js';

const postgres = usePostgres();
let store: PostgresStore;
let pool: pg.Pool;
let records: string;

const WINDOW = 600_000;
let next = 0;
const fresh = (n: number) => Array.from({ length: n }, () => ({ scope: 'plans', id: `id-${next++}`, leaseMs: 60_000, windowMs: WINDOW }));
const tokenOf = (claim: ClaimResult | undefined) => (claim?.status === 'acquired' ? claim.token : -1);

/** Claims, extends, completes and releases a few IDs in batches and one at a time. */
async function everyKindOfCall(): Promise<void> {
  const batch = fresh(3);
  const claims = await store.claimMany(batch);
  const owned = batch.map((r, i) => ({ scope: r.scope, id: r.id, token: tokenOf(claims[i]) }));
  expect(await store.extendMany(owned.map((o) => ({ ...o, leaseMs: 60_000 })))).toEqual(['ok', 'ok', 'ok']);
  expect(await store.completeMany(owned.slice(0, 2).map((o) => ({ ...o, windowMs: WINDOW })))).toEqual(['ok', 'ok']);
  expect(await store.releaseMany(owned.slice(2))).toEqual(['ok']);
  const [one] = fresh(1);
  const claim = await store.claim(one!);
  expect(await store.complete({ scope: 'plans', id: one!.id, token: tokenOf(claim), windowMs: WINDOW })).toBe('ok');
  const marked = Array.from({ length: 3 }, (_, i) => ({ ...fresh(1)[0]!, position: next * 10 + i }));
  const mark = { scope: 'plans', name: `mark-${next}` };
  const { claims: markedClaims } = await store.claimManyMarked(mark, marked, true);
  const done = await store.completeManyMarked(
    mark,
    marked.map((r, i) => ({ scope: r.scope, id: r.id, token: tokenOf(markedClaims[i]), windowMs: WINDOW })),
    { from: marked[0]!.position, to: marked[2]!.position },
  );
  expect(done.results).toEqual(['ok', 'ok', 'ok']);
}

/** Sequential scans of the records table so far (the store's session flushes its counters first). */
async function sequentialScans(): Promise<number> {
  // PostgreSQL 15 and later flush a session's counters on request; older servers within a second.
  const flushed = await pool.query('SELECT pg_stat_force_next_flush()').then(
    () => true,
    () => false,
  );
  await sleep(flushed ? 50 : 1_500);
  const { rows } = await postgres.admin.query<{ n: string }>(`SELECT seq_scan::text AS n FROM pg_stat_user_tables WHERE relid = $1::regclass`, [records]);
  return Number(rows[0]!.n);
}

beforeAll(async () => {
  pool = postgres.pool({ max: 1 }); // one session: its prepared statements are the ones planned below
  store = await postgres.store({ pool });
  records = `"${store.tables.schema}".onceonly_records`;
  await postgres.admin.query(`ALTER TABLE ${records} SET (autovacuum_enabled = false)`);
  // Past the server's switch to generic plans (after five custom ones), on an empty table.
  for (let i = 0; i < 8; i++) await everyKindOfCall();
});

describe('after the table grew from empty, without an ANALYZE', () => {
  it('claims, extensions, completions and releases (batched, single and marked) never scan the table', async () => {
    // 30 000 rows written by another session, as other workers would.
    await postgres.admin.query(
      `INSERT INTO ${records} (token, claimed_at, updated_at, lease_until, expires_at, state, scope, id)
       SELECT 1, now(), now(), now(), now() + interval '1 hour', 2, 'plans', 'bulk-' || g FROM generate_series(1, 30000) AS g`,
    );
    const before = await sequentialScans();
    for (let i = 0; i < 3; i++) await everyKindOfCall();
    expect(await sequentialScans()).toBe(before);
  });
});
