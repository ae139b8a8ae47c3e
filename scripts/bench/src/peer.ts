import { randomBytes } from 'node:crypto';
import { IdempotencyConfig, makeIdempotent } from '@aws-lambda-powertools/idempotency';
import { CachePersistenceLayer } from '@aws-lambda-powertools/idempotency/cache';
import { DedupProcessor, uuidv7 } from '@onceonly/core';
import { RedisStore } from '@onceonly/redis';
import { createClient } from '@redis/client';
import { Redis } from 'ioredis';
import { costsDuring, usedMemory } from './redis.js';
import { deleteByPrefix } from './store-helpers.js';
import { compare, rate, type Row } from './table.js';

const DAY_S = 86_400;
/** Calls in flight at once while filling Redis (Powertools pays one round trip per step). */
const CONCURRENCY = 200;
/** Concurrent callers in the `process()` rows. */
const CALLERS = 50;

/** Runs `call` once per ID with `callers` calls in flight at once. */
async function callAll(ids: readonly string[], callers: number, call: (id: string) => Promise<unknown>): Promise<void> {
  let next = 0;
  const caller = async () => {
    while (next < ids.length) await call(ids[next++]!);
  };
  await Promise.all(Array.from({ length: callers }, caller));
}

/**
 * A peer on the same Redis: AWS Powertools' `makeIdempotent` with its Redis (cache) persistence layer
 * (`@redis/client`), one-day expiry, no payload validation. Its record is a JSON string per ID under
 * `<keyPrefix>#<md5 of the event key, base64>`; the key prefix is chosen so its keys are as long as
 * the store's `<prefix>:{bench}:<uuid>` (53 bytes), so only the records differ.
 *
 * Rows: Redis memory per retained ID at `count` IDs, against a plain `SET <key> 1 PX` of keys of the
 * same length and against the onceonly store (no fingerprint, as Powertools keeps none here); and
 * claim+complete one at a time, Powertools against the store; and `DedupProcessor.process()` against
 * `makeIdempotent` as users call them, on a handler that does nothing: one at a time on fresh IDs, 50
 * concurrent callers on fresh IDs (the processor coalesces their claims and completions into shared
 * round trips), and one at a time on IDs already done (duplicates).
 */
export async function peerPowertools(
  url: string,
  count: number,
  singles: number,
  rounds: number,
  progress: (s: string) => void,
): Promise<{ rows: Row[]; notes: string[] }> {
  const redis = createClient({ url });
  redis.on('error', () => {});
  await redis.connect();
  const client = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true });
  await client.connect();
  const tag = randomBytes(3).toString('hex');
  // `<28 characters>#<24 characters of md5 base64>`: 53 bytes, as the store's keys below.
  const keyPrefix = `pt${tag}:bench:${'x'.repeat(13)}`;
  const storePrefix = `ob${tag}`;
  const store = new RedisStore({ client, prefix: storePrefix });
  const persistenceStore = new CachePersistenceLayer({ client: redis });
  const config = new IdempotencyConfig({ eventKeyJmesPath: 'id', expiresAfterSeconds: DAY_S });
  // As inside a Lambda invocation (else Powertools warns on every call): in-progress records then
  // carry the invocation's deadline, as they do in production.
  config.registerLambdaContext({ getRemainingTimeInMillis: () => 60_000 } as Parameters<IdempotencyConfig['registerLambdaContext']>[0]);
  const handle = makeIdempotent(async (_event: { id: string }) => undefined, { persistenceStore, config, keyPrefix });
  const rows: Row[] = [];
  const notes: string[] = [];
  try {
    const fill = async (write: (id: string) => Promise<unknown>) => {
      const ids = Array.from({ length: count }, () => uuidv7());
      await callAll(ids, CONCURRENCY, write);
      return ids;
    };
    const measure = async (what: string, run: () => Promise<unknown>) => {
      progress(`peer memory: ${what}, ${count} IDs`);
      const before = await usedMemory(client);
      await run();
      const bytes = ((await usedMemory(client)) - before) / count;
      await deleteByPrefix(client, keyPrefix);
      await deleteByPrefix(client, `${storePrefix}:`);
      return bytes;
    };
    const powertools = await measure('Powertools makeIdempotent', () => fill((id) => handle({ id })));
    const baseline = await measure('SET key 1 PX', () => fill((id) => client.set(store.keyOf('bench', id), '1', 'PX', DAY_S * 1000)));
    const ours = await measure('onceonly store', () =>
      fill(async (id) => {
        const claim = await store.claim({ scope: 'bench', id, leaseMs: 30_000, windowMs: DAY_S * 1000 });
        if (claim.status === 'acquired') await store.complete({ scope: 'bench', id, token: claim.token, windowMs: DAY_S * 1000 });
      }),
    );
    const label = `${(count / 1e6).toFixed(count % 1e6 === 0 ? 0 : 1)} M`;
    rows.push({ group: 'peer', name: `Powertools bytes per retained ID at ${label}`, value: powertools, baseline, baselineName: 'SET <53-byte key> 1 PX', unit: 'bytes' });
    rows.push({ group: 'peer', name: `onceonly bytes per retained ID at ${label}, fingerprint: false`, value: ours, baseline: powertools, baselineName: 'Powertools makeIdempotent (same run)', unit: 'bytes',
      target: { text: '≤ 1.00 of Powertools', met: (r) => r.value <= r.baseline } });

    progress('peer: claim+complete one at a time, onceonly store vs Powertools');
    const single = await compare(
      rounds,
      () => {
        const ids = Array.from({ length: singles }, () => uuidv7());
        return rate(singles, async () => {
          for (const id of ids) {
            const claim = await store.claim({ scope: 'bench', id, leaseMs: 30_000, windowMs: DAY_S * 1000 });
            if (claim.status === 'acquired') await store.complete({ scope: 'bench', id, token: claim.token, windowMs: DAY_S * 1000 });
          }
        });
      },
      () => {
        const ids = Array.from({ length: singles }, () => uuidv7());
        return rate(singles, async () => {
          for (const id of ids) await handle({ id });
        });
      },
    );
    rows.push({ group: 'peer', name: 'onceonly claim+complete, single', ...single, baselineName: 'Powertools makeIdempotent, single', unit: 'ops/s' });

    const processor = new DedupProcessor({ scope: 'bench', store, windowMs: DAY_S * 1000, fingerprint: false });
    const noop = async () => undefined;
    const viaProcess = (id: string) => processor.process({ id }, noop);
    const viaPowertools = (id: string) => handle({ id });
    const fresh = (callers: number, call: (id: string) => Promise<unknown>) => () => {
      const ids = Array.from({ length: singles }, () => uuidv7());
      return rate(singles, () => callAll(ids, callers, call));
    };
    const cases: { name: string; callers: number; duplicates: boolean; target: number }[] = [
      { name: 'process(), one at a time, fresh IDs', callers: 1, duplicates: false, target: 1 },
      { name: `process(), ${CALLERS} concurrent callers, fresh IDs`, callers: CALLERS, duplicates: false, target: 3 },
      { name: 'process(), one at a time, duplicates', callers: 1, duplicates: true, target: 2.5 },
    ];
    for (const c of cases) {
      progress(`peer: ${c.name}, onceonly vs Powertools`);
      let measured: { value: number; baseline: number };
      if (c.duplicates) {
        // The same IDs, done once by each side beforehand: every measured call is a duplicate.
        const ids = Array.from({ length: singles }, () => uuidv7());
        await callAll(ids, CALLERS, viaProcess);
        await callAll(ids, CALLERS, viaPowertools);
        measured = await compare(rounds, () => rate(singles, () => callAll(ids, 1, viaProcess)), () => rate(singles, () => callAll(ids, 1, viaPowertools)));
      } else {
        measured = await compare(rounds, fresh(c.callers, viaProcess), fresh(c.callers, viaPowertools));
      }
      const callers = c.callers === 1 ? 'one at a time' : `${c.callers} concurrent callers`;
      rows.push({ group: 'peer', name: c.name, ...measured, baselineName: `Powertools makeIdempotent, ${callers}`, unit: 'ops/s',
        target: { text: `≥ ${c.target.toFixed(2)} of baseline`, met: (r) => r.value / r.baseline >= c.target } });

      // Where each side's time goes, per call, on one more pass of the same calls.
      const sample = Math.min(singles, 5_000);
      const ids = () => Array.from({ length: sample }, () => uuidv7());
      const sides: [string, (id: string) => Promise<unknown>][] = [['onceonly', viaProcess], ['Powertools', viaPowertools]];
      const costs: string[] = [];
      for (const [side, call] of sides) {
        const batch = ids();
        if (c.duplicates) await callAll(batch, CALLERS, call);
        costs.push(`${side}: ${await costsDuring(client, sample, () => callAll(batch, c.callers, call))}`);
      }
      notes.push(`peer, ${c.name}, per call (${sample} calls): ${costs.join('; ')}`);
    }
    await processor.close();
  } finally {
    await deleteByPrefix(client, keyPrefix);
    await deleteByPrefix(client, `${storePrefix}:`);
    client.disconnect();
    await redis.quit().catch(() => undefined);
  }
  return { rows, notes };
}
