// prune() deletes rows whose window is over, and only those, in bounded statements; an expired row
// reads as absent before it is pruned, and its ID's next token still grows after it is gone.
import type { ClaimResult } from '@onceonly/core';
import { PostgresStore } from '@onceonly/postgres';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { sleep, usePostgres } from './postgres-test-context.js';

const postgres = usePostgres();
const tokenOf = (claim: ClaimResult) => (claim.status === 'acquired' ? claim.token : -1);
const SHORT = 200;
const LONG = 60_000;

afterEach(() => {
  vi.useRealTimers();
});

async function rowsOf(store: PostgresStore): Promise<string[]> {
  const { rows } = await postgres.admin.query<{ id: string }>(`SELECT id FROM "${store.tables.schema}".onceonly_records ORDER BY id`);
  return rows.map((r) => r.id);
}

/** Rows in every state, some with windows that are over once SHORT ms have passed. */
async function seed(store: PostgresStore): Promise<void> {
  const claim = (id: string, leaseMs: number, windowMs: number) => store.claim({ scope: 's', id, leaseMs, windowMs });
  for (const id of ['done-1', 'done-2', 'done-3']) {
    const token = tokenOf(await claim(id, 100, LONG));
    await store.complete({ scope: 's', id, token, windowMs: SHORT });
  }
  await store.fail({ scope: 's', id: 'failed', token: tokenOf(await claim('failed', 100, LONG)), error: 'E', windowMs: SHORT });
  await claim('abandoned', 100, SHORT - 50); // kept for max(window, lease): both end within SHORT
  // Kept: a completion with a long window, a lease that ran out within its window, a released claim.
  await store.complete({ scope: 's', id: 'kept-done', token: tokenOf(await claim('kept-done', 100, LONG)), windowMs: LONG });
  await claim('kept-lease-over', 100, LONG);
  await store.release({ scope: 's', id: 'kept-released', token: tokenOf(await claim('kept-released', 100, LONG)) });
}

const EXPIRED = ['abandoned', 'done-1', 'done-2', 'done-3', 'failed'];
const KEPT = ['kept-done', 'kept-lease-over', 'kept-released'];

describe('prune', () => {
  it('removes only rows whose window is over, in statements of batchSize rows, and answers how many', async () => {
    const store = await postgres.store();
    await seed(store);
    await sleep(SHORT + 50);
    // Expired rows already read as absent: pruning is for space, never for correctness.
    for (const id of EXPIRED) expect(await store.get('s', id)).toBeUndefined();

    expect(await store.prune({ batchSize: 2, maxBatches: 1 })).toBe(2);
    expect(await store.prune({ batchSize: 2 })).toBe(3);
    expect(await rowsOf(store)).toEqual(KEPT);
    expect(await store.prune()).toBe(0);
    expect(await store.get('s', 'kept-done')).toMatchObject({ state: 'completed' });
  });

  it('an ID claimed again after its row expired, pruned or not, gets a higher token and no takeover', async () => {
    const store = await postgres.store();
    const first = await store.claim({ scope: 's', id: 'a', leaseMs: 100, windowMs: 150 });
    await store.claim({ scope: 's', id: 'b', leaseMs: 100, windowMs: 150 });
    await sleep(200);
    expect(await store.prune({ batchSize: 1, maxBatches: 1 })).toBe(1); // one of them is gone
    const again = await store.claimMany([{ scope: 's', id: 'a', leaseMs: 100, windowMs: 150 }, { scope: 's', id: 'b', leaseMs: 100, windowMs: 150 }]);
    for (const claim of again) expect(claim).toMatchObject({ status: 'acquired', takeover: false });
    expect(tokenOf(again[0]!)).toBeGreaterThan(tokenOf(first));
  });

  it('skips a row that another transaction holds locked, without waiting for it', async () => {
    const store = await postgres.store();
    await seed(store);
    await sleep(SHORT + 50);
    const holder = await postgres.admin.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM "${store.tables.schema}".onceonly_records WHERE id = 'done-2' FOR UPDATE`);
      expect(await store.prune()).toBe(EXPIRED.length - 1);
      await holder.query('COMMIT');
    } finally {
      holder.release();
    }
    expect(await store.prune()).toBe(1);
    expect(await rowsOf(store)).toEqual(KEPT);
  });

  it('runs every pruneIntervalMs until close(), and reports failures to onPruneError', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const schema = await postgres.freshSchema();
    const pool = postgres.pool();
    const store = new PostgresStore({ pool, schema, pruneIntervalMs: 1_000 });
    await store.migrate();
    await seed(store);
    await sleep(SHORT + 50);

    vi.advanceTimersByTime(1_000);
    await waitFor(async () => (await rowsOf(store)).length === KEPT.length);

    await store.close();
    await seed(store); // IDs new again: their rows expire anew
    await sleep(SHORT + 50);
    const spy = vi.spyOn(store, 'prune');
    vi.advanceTimersByTime(10_000);
    expect(spy).not.toHaveBeenCalled();

    const errors: Error[] = [];
    const broken = new PostgresStore({ pool, schema: await postgres.freshSchema(), pruneIntervalMs: 1_000, onPruneError: (e) => errors.push(e) });
    vi.advanceTimersByTime(1_000);
    await waitFor(async () => errors.length > 0);
    expect(errors[0]).toMatchObject({ name: 'StoreUnavailableError', message: expect.stringContaining('42P01') });
    await broken.close();
  });
});

async function waitFor(condition: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await condition()) return;
    await sleep(10);
  }
  throw new Error('condition not met within 5 s');
}
