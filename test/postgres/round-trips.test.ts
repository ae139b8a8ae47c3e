// One round trip per call: a claim, and a batch of any size over any number of scopes, is one SQL
// statement. Counted three ways on a pool nothing else uses: the `query` calls of its connections,
// the protocol messages that end a round trip (Sync for the extended protocol, Query for the simple
// one), after which the client waits for the server's ReadyForQuery, and the flights: sends made while
// the connection had nothing in flight (a pipelined client sends more behind an unanswered one).
import type { ClaimResult } from '@onceonly/core';
import { PostgresStore } from '@onceonly/postgres';
import type pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { usePostgres } from './postgres-test-context.js';

const postgres = usePostgres();
let store: PostgresStore;
const counted = { queries: 0, roundTrips: 0, flights: 0 };

/** A pool whose connections count what they send. */
function countingPool(config: pg.PoolConfig = {}): pg.Pool {
  const pool = postgres.pool({ max: 4, ...config });
  pool.on('connect', (client) => {
    const query = client.query;
    client.query = function (this: unknown, ...args: unknown[]) {
      counted.queries++;
      return (query as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof client.query;
    const connection = (client as unknown as { connection: Record<'sync' | 'query', (...a: unknown[]) => unknown> & NodeJS.EventEmitter }).connection;
    let unanswered = 0;
    connection.on('readyForQuery', () => unanswered--);
    for (const ends of ['sync', 'query'] as const) {
      const send = connection[ends];
      connection[ends] = function (this: unknown, ...args: unknown[]) {
        counted.roundTrips++;
        if (unanswered++ === 0) counted.flights++;
        return send.apply(this, args);
      };
    }
  });
  return pool;
}

/** What `action` sent, once the pool's connections are open (connecting is not a statement). */
async function observe<T>(action: () => Promise<T>): Promise<{ queries: number; roundTrips: number; flights: number; value: T }> {
  counted.queries = 0;
  counted.roundTrips = 0;
  counted.flights = 0;
  const value = await action();
  return { queries: counted.queries, roundTrips: counted.roundTrips, flights: counted.flights, value };
}

beforeAll(async () => {
  const schema = await postgres.freshSchema();
  store = new PostgresStore({ pool: countingPool(), schema });
  await store.migrate();
  // Warm up: the first use of each statement on a connection also prepares it (still one round trip).
  await store.claim({ scope: 'warm', id: 'up', leaseMs: 1000, windowMs: 1000 });
});

const claims = (n: number, scope = 'jobs', from = 0) =>
  Array.from({ length: n }, (_, i) => ({ scope, id: `id-${from + i}`, leaseMs: 30_000, windowMs: 60_000 }));
const tokenOf = (claim: ClaimResult | undefined) => (claim?.status === 'acquired' ? claim.token : -1);

describe('round trips', () => {
  it('claim is one statement, fresh or duplicate', async () => {
    const fresh = await observe(() => store.claim({ scope: 'jobs', id: 'one', leaseMs: 1000, windowMs: 1000 }));
    expect(fresh).toMatchObject({ queries: 1, roundTrips: 1, value: { status: 'acquired' } });
    const duplicate = await observe(() => store.claim({ scope: 'jobs', id: 'one', leaseMs: 1000, windowMs: 1000 }));
    expect(duplicate).toMatchObject({ queries: 1, roundTrips: 1, value: { status: 'in-progress' } });
  });

  it('claimMany, extendMany, completeMany of 100 IDs are one statement each, and so is the duplicate batch', async () => {
    const claimed = await observe(() => store.claimMany(claims(100)));
    expect(claimed).toMatchObject({ queries: 1, roundTrips: 1 });
    expect(claimed.value.every((c) => c.status === 'acquired')).toBe(true);

    const owned = claimed.value.map((c, i) => ({ scope: 'jobs', id: `id-${i}`, token: tokenOf(c) }));
    const extended = await observe(() => store.extendMany(owned.map((o) => ({ ...o, leaseMs: 30_000 }))));
    expect(extended).toMatchObject({ queries: 1, roundTrips: 1 });
    expect(extended.value.every((r) => r === 'ok')).toBe(true);

    const completed = await observe(() => store.completeMany(owned.map((o, i) => ({ ...o, result: `{"i":${i}}`, windowMs: 60_000 }))));
    expect(completed).toMatchObject({ queries: 1, roundTrips: 1 });
    expect(completed.value.every((r) => r === 'ok')).toBe(true);

    const again = await observe(() => store.claimMany(claims(100)));
    expect(again).toMatchObject({ queries: 1, roundTrips: 1 });
    expect(again.value.every((c) => c.status === 'completed')).toBe(true);
  });

  it('releaseMany of 100 is one statement', async () => {
    const claimed = await store.claimMany(claims(100, 'jobs', 1000));
    const released = await observe(() => store.releaseMany(claimed.map((c, i) => ({ scope: 'jobs', id: `id-${1000 + i}`, token: tokenOf(c) }))));
    expect(released).toMatchObject({ queries: 1, roundTrips: 1 });
    expect(released.value.every((r) => r === 'ok')).toBe(true);
  });

  it('a batch over three scopes is still one statement', async () => {
    const batch = [...claims(10, 'a', 200), ...claims(10, 'b', 200), ...claims(10, 'c', 200)];
    const seen = await observe(() => store.claimMany(batch));
    expect(seen).toMatchObject({ queries: 1, roundTrips: 1 });
    expect(seen.value.every((c) => c.status === 'acquired')).toBe(true);
  });

  it('a marked batch claim and a marked batch completion (with the mark advanced) are one statement each', async () => {
    const mark = { scope: 'orders', name: 'orders:0' };
    const requests = Array.from({ length: 50 }, (_, i) => ({ scope: 'orders', id: `o-${i}`, leaseMs: 30_000, windowMs: 60_000, position: i }));
    const claimed = await observe(() => store.claimManyMarked(mark, requests, true));
    expect(claimed).toMatchObject({ queries: 1, roundTrips: 1 });
    const completes = claimed.value.claims.map((c, i) => ({ scope: 'orders', id: `o-${i}`, token: tokenOf(c), windowMs: 60_000 }));
    const completed = await observe(() => store.completeManyMarked(mark, completes, { from: 0, to: 49 }));
    expect(completed).toMatchObject({ queries: 1, roundTrips: 1, value: { mark: { low: 0, high: 49 } } });
    expect(completed.value.results.every((r) => r === 'ok')).toBe(true);
  });

  it('a batch repeating IDs is one statement; the repeats answer as if claimed right after the first', async () => {
    const request = (id: string, fingerprint: string) => ({ scope: 'repeats', id, fingerprint, leaseMs: 30_000, windowMs: 60_000 });
    const seen = await observe(() => store.claimMany([request('x', 'f1'), request('y', 'f2'), request('x', 'f3')]));
    expect(seen).toMatchObject({ queries: 1, roundTrips: 1 });
    const [first, , repeat] = seen.value;
    expect(first).toMatchObject({ status: 'acquired' });
    expect(repeat).toMatchObject({ status: 'in-progress', record: { state: 'in-progress', token: tokenOf(first), fingerprint: 'f1' } });
    // The same in completions: the first of a repeated (id, token) completes, the repeat finds it done.
    const ref = { scope: 'repeats', id: 'x', token: tokenOf(first), windowMs: 60_000 };
    expect(await store.completeMany([ref, ref])).toEqual(['ok', 'lease-lost']);
  });
});

describe('a transaction of completeWithin', () => {
  it('is four round trips around a handler of one write: BEGIN, the write, the completion (prepared), COMMIT', async () => {
    await postgres.admin.query(`CREATE TABLE IF NOT EXISTS "${store.tables.schema}".effects (id text)`);
    const claim = await store.claim({ scope: 'tx', id: "t-1'; --", leaseMs: 30_000, windowMs: 60_000 });
    const ran = await observe(() =>
      store.completeWithin({ scope: 'tx', id: "t-1'; --", token: tokenOf(claim), windowMs: 60_000 }, async (tx) => {
        await tx.query(`INSERT INTO "${store.tables.schema}".effects VALUES ($1)`, ["t-1'; --"]);
        return { value: 'v', result: "r\\'x" };
      }),
    );
    expect(ran).toMatchObject({ roundTrips: 4, value: { transition: 'ok', value: 'v' } });
    // Hostile text in the ID and the result, as parameters.
    expect(await store.get('tx', "t-1'; --")).toMatchObject({ state: 'completed', result: "r\\'x" });
  });

  it('rolls the write back when the completion is fenced out (four round trips: ROLLBACK instead of COMMIT)', async () => {
    const claim = await store.claim({ scope: 'tx', id: 't-2', leaseMs: 30_000, windowMs: 60_000 });
    const ran = await observe(() =>
      store.completeWithin({ scope: 'tx', id: 't-2', token: tokenOf(claim) + 1, windowMs: 60_000 }, async (tx) => {
        await tx.query(`INSERT INTO "${store.tables.schema}".effects VALUES ('t-2')`);
        return { value: 'v', result: undefined };
      }),
    );
    expect(ran).toMatchObject({ roundTrips: 4, value: { transition: 'lease-lost' } });
    const effects = await postgres.admin.query(`SELECT count(*)::int AS n FROM "${store.tables.schema}".effects WHERE id = 't-2'`);
    expect(effects.rows[0].n).toBe(0);
    expect(await store.get('tx', 't-2')).toMatchObject({ state: 'in-progress', token: tokenOf(claim) });
  });
});

describe('a transaction of completeWithin on a pipelined pool (pipeline: true)', () => {
  let pipelined: PostgresStore;
  beforeAll(async () => {
    pipelined = new PostgresStore({ pool: countingPool({ pipeline: true }), schema: store.tables.schema });
    await postgres.admin.query(`CREATE TABLE IF NOT EXISTS "${store.tables.schema}".effects (id text)`);
    await pipelined.claim({ scope: 'warm', id: 'pipelined', leaseMs: 1000, windowMs: 1000 });
  });
  const write = (id: string) => async (tx: pg.PoolClient) => {
    await tx.query(`INSERT INTO "${store.tables.schema}".effects VALUES ($1)`, [id]);
    return { value: 'v', result: 'r' };
  };

  it('is two flights around a handler of one write: BEGIN with the write, the completion with the COMMIT', async () => {
    const claim = await pipelined.claim({ scope: 'tx', id: 'p-1', leaseMs: 30_000, windowMs: 60_000 });
    const ran = await observe(() => pipelined.completeWithin({ scope: 'tx', id: 'p-1', token: tokenOf(claim), windowMs: 60_000 }, write('p-1')));
    expect(ran).toMatchObject({ queries: 4, roundTrips: 4, flights: 2, value: { transition: 'ok', value: 'v' } });
    expect(await store.get('tx', 'p-1')).toMatchObject({ state: 'completed', result: 'r' });
  });

  it('a fence that fails stops the COMMIT sent behind it: the write rolls back, lease-lost, still two flights', async () => {
    const claim = await pipelined.claim({ scope: 'tx', id: 'p-2', leaseMs: 30_000, windowMs: 60_000 });
    const ran = await observe(() => pipelined.completeWithin({ scope: 'tx', id: 'p-2', token: tokenOf(claim) + 1, windowMs: 60_000 }, write('p-2')));
    expect(ran).toMatchObject({ flights: 2, value: { transition: 'lease-lost', value: 'v' } });
    const effects = await postgres.admin.query(`SELECT count(*)::int AS n FROM "${store.tables.schema}".effects WHERE id = 'p-2'`);
    expect(effects.rows[0].n).toBe(0);
    expect(await store.get('tx', 'p-2')).toMatchObject({ state: 'in-progress', token: tokenOf(claim) });
  });
});

describe('a duplicate claim is a read', () => {
  it('writes no row version and takes no lock', async () => {
    const claim = await store.claim({ scope: 'reads', id: 'r1', leaseMs: 30_000, windowMs: 60_000 });
    await store.complete({ scope: 'reads', id: 'r1', token: tokenOf(claim), windowMs: 60_000 });
    await store.claim({ scope: 'reads', id: 'r2', leaseMs: 30_000, windowMs: 60_000 }); // in progress
    const versions = () =>
      postgres.admin.query(`SELECT id, xmin::text, xmax::text, ctid::text FROM "${store.tables.schema}".onceonly_records WHERE scope = 'reads' ORDER BY id`);
    const before = (await versions()).rows;
    const answers = await store.claimMany([
      { scope: 'reads', id: 'r1', leaseMs: 30_000, windowMs: 60_000 },
      { scope: 'reads', id: 'r2', leaseMs: 30_000, windowMs: 60_000 },
    ]);
    expect(answers.map((a) => a.status)).toEqual(['completed', 'in-progress']);
    // Same tuple (ctid), same inserting transaction (xmin), and no locker recorded (xmax).
    expect((await versions()).rows).toEqual(before);
  });
});

describe('a single claim racing a first claim of the same new ID', () => {
  it('is settled by a second statement, and answers in-progress with the winner\'s record', async () => {
    const schema = store.tables.schema;
    const rival = await postgres.admin.connect();
    try {
      await rival.query('BEGIN');
      await rival.query(
        `INSERT INTO "${schema}".onceonly_records (token, claimed_at, updated_at, lease_until, expires_at, state, scope, id, fingerprint)
         VALUES (43, now(), now(), now() + interval '1 minute', now() + interval '1 hour', 1, 'race-one', 'new-id', 'rival')`,
      );
      const racing = observe(() => store.claim({ scope: 'race-one', id: 'new-id', leaseMs: 30_000, windowMs: 60_000 }));
      await waitForLockWait(schema);
      await rival.query('COMMIT');
      const seen = await racing;
      expect(seen).toMatchObject({ queries: 2, roundTrips: 2, value: { status: 'in-progress', record: { state: 'in-progress', token: 43, fingerprint: 'rival' } } });
    } finally {
      await rival.query('ROLLBACK').catch(() => undefined);
      rival.release();
    }
  });
});

describe('a claim racing a first claim of the same new ID', () => {
  it('is settled by a second statement for that ID only, and answers in-progress with the winner\'s record', async () => {
    const schema = store.tables.schema;
    const rival = await postgres.admin.connect();
    try {
      // The rival's claim: inserted, not yet committed, so the store's snapshot cannot see it.
      await rival.query('BEGIN');
      const inserted = await rival.query<{ token: string }>(
        `INSERT INTO "${schema}".onceonly_records (token, claimed_at, updated_at, lease_until, expires_at, state, scope, id, fingerprint)
         VALUES (42, now(), now(), now() + interval '1 minute', now() + interval '1 hour', 1, 'race', 'new-id', 'rival')
         RETURNING token::text`,
      );
      const racing = observe(() => store.claimMany([
        { scope: 'race', id: 'other', leaseMs: 30_000, windowMs: 60_000 },
        { scope: 'race', id: 'new-id', leaseMs: 30_000, windowMs: 60_000 },
      ]));
      // Wait until the store's statement is blocked on the rival's row, then let the rival commit.
      await waitForLockWait(schema);
      await rival.query('COMMIT');
      const seen = await racing;
      expect(seen).toMatchObject({ queries: 2, roundTrips: 2 });
      expect(seen.value[0]).toMatchObject({ status: 'acquired' });
      expect(seen.value[1]).toMatchObject({
        status: 'in-progress',
        record: { state: 'in-progress', token: Number(inserted.rows[0]!.token), fingerprint: 'rival' },
      });
    } finally {
      await rival.query('ROLLBACK').catch(() => undefined);
      rival.release();
    }
  });
});

describe('a claim whose second statement fails', () => {
  it('rejects with StoreUnavailableError and gives back what the first statement acquired', async () => {
    const schema = store.tables.schema;
    const pool = postgres.pool({ max: 2 });
    const query = pool.query.bind(pool);
    let calls = 0;
    pool.query = ((...args: Parameters<typeof pool.query>) => {
      if (++calls === 2) return Promise.reject(new Error('connection lost'));
      return query(...args);
    }) as typeof pool.query;
    const flaky = new PostgresStore({ pool, schema });
    const rival = await postgres.admin.connect();
    try {
      await rival.query('BEGIN');
      await rival.query(
        `INSERT INTO "${schema}".onceonly_records (token, claimed_at, updated_at, lease_until, expires_at, state, scope, id)
         VALUES (7, now(), now(), now() + interval '1 minute', now() + interval '1 hour', 1, 'race-2', 'new-id')`,
      );
      const racing = flaky.claimMany([
        { scope: 'race-2', id: 'mine', leaseMs: 30_000, windowMs: 60_000 },
        { scope: 'race-2', id: 'new-id', leaseMs: 30_000, windowMs: 60_000 },
      ]);
      await waitForLockWait(schema);
      await rival.query('COMMIT');
      await expect(racing).rejects.toMatchObject({ name: 'StoreUnavailableError', message: 'PostgreSQL store unavailable during claimMany: Error: connection lost' });
    } finally {
      await rival.query('ROLLBACK').catch(() => undefined);
      rival.release();
    }
    expect(calls).toBe(3); // the claim, its failed second statement, the release
    expect(await store.get('race-2', 'mine')).toBeUndefined();
    expect(await store.claim({ scope: 'race-2', id: 'mine', leaseMs: 30_000, windowMs: 60_000 })).toMatchObject({ status: 'acquired', takeover: false });
  });
});

/** Resolves once some session waits for a lock (the store's INSERT behind the rival's uncommitted row). */
async function waitForLockWait(schema: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const { rows } = await postgres.admin.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1`,
      [`%"${schema}"%`],
    );
    if (rows[0].n > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('the claim never waited for the rival');
}
