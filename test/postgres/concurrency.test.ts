// Many workers claiming overlapping batches at once, each on its own connection: every ID is acquired
// exactly once, and no batch fails (batches lock rows in key order, so they cannot deadlock).
import type { ClaimResult } from '@onceonly/core';
import { PostgresStore } from '@onceonly/postgres';
import { describe, expect, it } from 'vitest';
import { sleep, usePostgres } from './postgres-test-context.js';

const postgres = usePostgres();

function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let state = seed;
  for (let i = out.length - 1; i > 0; i--) {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    const j = state % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

describe('overlapping batches from 20 workers at once', () => {
  it('acquire each ID exactly once, new IDs and expired leases alike, without a deadlock', async () => {
    const schema = (await postgres.store()).tables.schema;
    const pool = postgres.pool({ max: 20 });
    const workers = Array.from({ length: 20 }, () => new PostgresStore({ pool, schema }));
    const ids = Array.from({ length: 100 }, (_, i) => `id-${i}`);
    const leaseMs = 300;
    const batchOf = (worker: number) =>
      shuffled(ids, worker + 1)
        .slice(0, 60)
        .map((id) => ({ scope: 'race', id, leaseMs, windowMs: 60_000 }));

    const round = async (): Promise<Map<string, ClaimResult[]>> => {
      const answers = await Promise.all(workers.map((worker, w) => worker.claimMany(batchOf(w))));
      const byId = new Map<string, ClaimResult[]>();
      answers.forEach((batch, w) => batch.forEach((claim, i) => byId.set(batchOf(w)[i]!.id, [...(byId.get(batchOf(w)[i]!.id) ?? []), claim])));
      return byId;
    };

    const first = await round();
    const claimedIds = [...first.keys()];
    for (const [id, claims] of first) {
      expect(claims.filter((c) => c.status === 'acquired'), id).toHaveLength(1);
      expect(claims.filter((c) => c.status !== 'acquired' && c.status !== 'in-progress'), id).toHaveLength(0);
    }

    // Every lease runs out: the second round takes each one over, again exactly once.
    await sleep(leaseMs + 50);
    const second = await round();
    expect([...second.keys()].sort()).toEqual(claimedIds.sort());
    for (const [id, claims] of second) {
      const winners = claims.filter((c) => c.status === 'acquired');
      expect(winners, id).toHaveLength(1);
      expect(winners[0]).toMatchObject({ takeover: true });
    }
  });
});
