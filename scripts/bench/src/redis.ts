import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { fingerprintOf, uuidv7, type ClaimResult } from '@onceonly/core';
import { RedisStore } from '@onceonly/redis';
import { deleteByPrefix } from './store-helpers.js';
import { compare, median, rate, type Row } from './table.js';

const LEASE = 30_000;
const WINDOW = 600_000;
/** The window of the memory rows: a day, as most deployments keep IDs. */
const DAY = 86_400_000;

function acquired(claim: ClaimResult | undefined): number {
  if (claim?.status !== 'acquired') throw new Error(`bench: unexpected claim answer ${claim?.status}`);
  return claim.token;
}

/**
 * claim + complete on the Redis store, one at a time and in batches of 100, each against the cheapest
 * raw commands that do a comparable job: `SET NX PX` (take the ID) then `SET PX` (mark it done), sent
 * one by one, or pipelined 100 at a time. Then the commands Redis ran per message (`INFO
 * commandstats`), and Redis memory per retained ID at `retained` IDs (see {@link redisFootprint}).
 */
export async function redisThroughput(
  url: string,
  n: number,
  rounds: number,
  retained: number,
  progress: (s: string) => void,
): Promise<{ rows: Row[]; notes: string[] }> {
  const client = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true });
  await client.connect();
  const prefix = `onceonly-bench-${uuidv7()}`;
  const store = new RedisStore({ client, prefix });
  const rows: Row[] = [];
  const notes: string[] = [];
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
    const storeBatches = async (count: number) => {
      const ids = Array.from({ length: count }, () => uuidv7());
      return rate(count, async () => {
        for (let i = 0; i < count; i += 100) {
          const batch = ids.slice(i, i + 100);
          const claims = await store.claimMany(batch.map((id) => ({ scope: 'bench', id, leaseMs: LEASE, windowMs: WINDOW })));
          await store.completeMany(batch.map((id, k) => ({ scope: 'bench', id, token: acquired(claims[k]), windowMs: WINDOW })));
        }
      });
    };
    const pipelined = async (count: number) => {
      const keys = Array.from({ length: count }, () => `${prefix}:raw:${uuidv7()}`);
      return rate(count, async () => {
        for (let i = 0; i < count; i += 100) {
          const batch = keys.slice(i, i + 100);
          const claim = client.pipeline();
          for (const key of batch) claim.set(key, '1', 'PX', LEASE, 'NX');
          await claim.exec();
          const complete = client.pipeline();
          for (const key of batch) complete.set(key, '2', 'PX', WINDOW);
          await complete.exec();
        }
      });
    };
    const batched = await compare(rounds, () => storeBatches(n), () => pipelined(n));
    rows.push({
      group: 'redis',
      name: 'claim+complete, batches of 100',
      ...batched,
      baselineName: 'pipelined SET NX PX ×100, then SET PX ×100',
      unit: 'ops/s',
      target: { text: '≥ 1.00 of baseline', met: (r) => r.value / r.baseline >= 1 },
    });

    progress('redis store: commands per message (INFO commandstats)');
    const sample = Math.min(n, 10_000);
    const storeCommands = await commandsDuring(client, sample, () => storeBatches(sample));
    const rawCommands = await commandsDuring(client, sample, () => pipelined(sample));
    notes.push(
      `redis commands per message, claim+complete in batches of 100 (INFO commandstats, ${sample} messages): ` +
        `store ${storeCommands.text}; pipelined SET NX PX + SET PX ${rawCommands.text}.`,
    );
  } finally {
    await deleteByPrefix(client, prefix);
    client.disconnect();
  }
  rows.push(...(await redisFootprint(url, retained, progress)));
  return { rows, notes };
}

/**
 * Redis memory per retained ID (`INFO memory` used_memory before and after, divided by the IDs) at
 * `count` UUIDv7 IDs, a one-day window, completed through the store in batches of 1000: with an
 * `'auto'` fingerprint (22 characters, as the processor makes them) and without one. The baseline is
 * a plain `SET <key> 1 PX` of the same keys (`<prefix>:{bench}:<uuid>`, 53 bytes, as with the default
 * prefix `onceonly`). Each case is removed before the next is measured.
 */
export async function redisFootprint(url: string, count: number, progress: (s: string) => void): Promise<Row[]> {
  const client = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true });
  await client.connect();
  // As long as the default prefix 'onceonly', so keys have the length users' keys have.
  const prefix = `ob${randomBytes(3).toString('hex')}`;
  const store = new RedisStore({ client, prefix });
  const ids = Array.from({ length: count }, () => uuidv7());
  const rows: Row[] = [];
  const label = `${(count / 1e6).toFixed(count % 1e6 === 0 ? 0 : 1)} M`;
  try {
    const measure = async (what: string, write: () => Promise<void>): Promise<number> => {
      progress(`redis memory: ${what}, ${count} IDs`);
      await deleteByPrefix(client, `${prefix}:`);
      const before = await usedMemory(client);
      await write();
      const bytes = ((await usedMemory(client)) - before) / count;
      await deleteByPrefix(client, `${prefix}:`);
      return bytes;
    };
    const through = (fingerprint: boolean) => async () => {
      for (let i = 0; i < count; i += 1000) {
        const batch = ids.slice(i, i + 1000);
        const claims = await store.claimMany(
          batch.map((id) => ({ scope: 'bench', id, leaseMs: LEASE, windowMs: DAY, ...(fingerprint ? { fingerprint: fingerprintOf({ id }) } : {}) })),
        );
        await store.completeMany(batch.map((id, k) => ({ scope: 'bench', id, token: acquired(claims[k]), windowMs: DAY })));
      }
    };
    const baseline = await measure('SET key 1 PX', async () => {
      for (let i = 0; i < count; i += 1000) {
        const pipeline = client.pipeline();
        for (const id of ids.slice(i, i + 1000)) pipeline.set(store.keyOf('bench', id), '1', 'PX', DAY);
        await pipeline.exec();
      }
    });
    const target = { text: '≤ 1.00 of baseline', met: (r: Row) => r.value / r.baseline <= 1 };
    const baselineName = `SET <prefix>:{bench}:<uuid> 1 PX (${store.keyOf('bench', ids[0]!).length}-byte key)`;
    const withFingerprint = await measure('store, fingerprint', through(true));
    rows.push({ group: 'redis', name: `bytes per retained ID at ${label}, fingerprint 'auto'`, value: withFingerprint, baseline, baselineName, unit: 'bytes', target });
    const without = await measure('store, no fingerprint', through(false));
    rows.push({ group: 'redis', name: `bytes per retained ID at ${label}, fingerprint: false`, value: without, baseline, baselineName, unit: 'bytes', target });
  } finally {
    await deleteByPrefix(client, `${prefix}:`);
    client.disconnect();
  }
  return rows;
}

/** `used_memory` of `INFO memory`, after letting lazy frees settle. */
export async function usedMemory(client: Redis): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 3; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    samples.push(Number(/used_memory:(\d+)/.exec(await client.info('memory'))![1]));
  }
  return median(samples);
}

/** Redis' own CPU time so far (`INFO cpu`: user + system), in microseconds. */
async function serverCpuUs(client: Redis): Promise<number> {
  const info = await client.info('cpu');
  const seconds = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? NaN);
  return (seconds('used_cpu_user') + seconds('used_cpu_sys')) * 1e6;
}

/**
 * What `run` cost per message, on each side: this process's CPU (`process.cpuUsage`), Redis' CPU
 * (`INFO cpu`) and the commands Redis ran ({@link commandsDuring}).
 */
export async function costsDuring(client: Redis, messages: number, run: () => Promise<unknown>): Promise<string> {
  const server = await serverCpuUs(client);
  const cpu = process.cpuUsage();
  const commands = await commandsDuring(client, messages, run);
  const used = process.cpuUsage(cpu);
  const serverUs = (await serverCpuUs(client)) - server;
  return `client CPU ${((used.user + used.system) / messages).toFixed(1)} µs, Redis CPU ${(serverUs / messages).toFixed(1)} µs, commands ${commands.text}`;
}

/** Commands Redis ran (every `cmdstat_*` call, scripts and the commands inside them) while `run` ran, per message. */
async function commandsDuring(client: Redis, messages: number, run: () => Promise<unknown>): Promise<{ text: string }> {
  const read = async () => {
    const counts = new Map<string, number>();
    for (const match of (await client.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) counts.set(match[1]!, Number(match[2]));
    return counts;
  };
  const before = await read();
  await run();
  const after = await read();
  const per: string[] = [];
  let total = 0;
  for (const [command, calls] of after) {
    if (command === 'info') continue;
    const delta = calls - (before.get(command) ?? 0);
    if (delta <= 0) continue;
    total += delta;
    per.push(`${command} ${(delta / messages).toFixed(2)}`);
  }
  return { text: `${(total / messages).toFixed(2)} (${per.sort().join(', ')})` };
}
