import { Redis } from 'ioredis';
import { uuidv7, type ClaimResult } from '@onceonly/core';
import { RedisStore } from '@onceonly/redis';
import { deleteByPrefix } from './store-helpers.js';
import { compare, rate, type Row } from './table.js';

const LEASE = 30_000;
const WINDOW = 600_000;

function acquired(claim: ClaimResult | undefined): number {
  if (claim?.status !== 'acquired') throw new Error(`bench: unexpected claim answer ${claim?.status}`);
  return claim.token;
}

/**
 * claim + complete on the Redis store, one at a time and in batches of 100, each against the cheapest
 * raw commands that do a comparable job: `SET NX PX` (take the ID) then `SET PX` (mark it done), sent
 * one by one, or pipelined 100 at a time.
 */
export async function redisThroughput(url: string, n: number, rounds: number, progress: (s: string) => void): Promise<Row[]> {
  const client = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true });
  await client.connect();
  const prefix = `onceonly-bench-${uuidv7()}`;
  const store = new RedisStore({ client, prefix });
  const rows: Row[] = [];
  try {
    const singles = Math.min(n, 20_000);
    progress('redis store: claim+complete, single');
    const single = await compare(
      rounds,
      async () => {
        const ids = Array.from({ length: singles }, () => uuidv7());
        return rate(singles, async () => {
          for (const id of ids) {
            const token = acquired(await store.claim({ scope: 'bench', id, leaseMs: LEASE, windowMs: WINDOW }));
            await store.complete({ scope: 'bench', id, token, windowMs: WINDOW });
          }
        });
      },
      async () => {
        const ids = Array.from({ length: singles }, () => `${prefix}:raw:${uuidv7()}`);
        return rate(singles, async () => {
          for (const key of ids) {
            await client.set(key, '1', 'PX', LEASE, 'NX');
            await client.set(key, '2', 'PX', WINDOW);
          }
        });
      },
    );
    rows.push({ group: 'redis', name: 'claim+complete, single', ...single, baselineName: 'SET NX PX, then SET PX', unit: 'ops/s' });

    progress('redis store: claim+complete, batches of 100');
    const batched = await compare(
      rounds,
      async () => {
        const ids = Array.from({ length: n }, () => uuidv7());
        return rate(n, async () => {
          for (let i = 0; i < n; i += 100) {
            const batch = ids.slice(i, i + 100);
            const claims = await store.claimMany(batch.map((id) => ({ scope: 'bench', id, leaseMs: LEASE, windowMs: WINDOW })));
            await store.completeMany(batch.map((id, k) => ({ scope: 'bench', id, token: acquired(claims[k]), windowMs: WINDOW })));
          }
        });
      },
      async () => {
        const keys = Array.from({ length: n }, () => `${prefix}:raw:${uuidv7()}`);
        return rate(n, async () => {
          for (let i = 0; i < n; i += 100) {
            const batch = keys.slice(i, i + 100);
            const claim = client.pipeline();
            for (const key of batch) claim.set(key, '1', 'PX', LEASE, 'NX');
            await claim.exec();
            const complete = client.pipeline();
            for (const key of batch) complete.set(key, '2', 'PX', WINDOW);
            await complete.exec();
          }
        });
      },
    );
    rows.push({ group: 'redis', name: 'claim+complete, batches of 100', ...batched, baselineName: 'pipelined SET NX PX ×100, then SET PX ×100', unit: 'ops/s',
      target: { text: '≥ 0.50 of baseline', met: (r) => r.value / r.baseline >= 0.5 } });
  } finally {
    await deleteByPrefix(client, prefix);
    client.disconnect();
  }
  return rows;
}
