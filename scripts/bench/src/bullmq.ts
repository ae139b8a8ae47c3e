import { addBulkStamped, onceonly } from '@onceonly/bullmq';
import { uuidv7 } from '@onceonly/core';
import { RedisStore } from '@onceonly/redis';
import { Queue, Worker, type Processor } from 'bullmq';
import { Redis } from 'ioredis';
import { countingStore, deleteByPrefix } from './store-helpers.js';
import { compare, type Row } from './table.js';

/** Jobs/s of a Worker running `processor` over `n` jobs already waiting in a fresh queue. */
async function drain(url: string, n: number, concurrency: number, processor: Processor): Promise<number> {
  const name = `bench-${uuidv7()}`;
  const queue = new Queue(name, { connection: { url } });
  for (let i = 0; i < n; i += 1_000) {
    await addBulkStamped(queue, Array.from({ length: Math.min(1_000, n - i) }, (_, k) => ({ name: 'noop', data: { n: i + k } })));
  }
  const worker = new Worker(name, processor, { connection: { url, maxRetriesPerRequest: null }, concurrency, autorun: false });
  let done = 0;
  let failed = 0;
  const finished = new Promise<void>((resolve) => {
    const settle = () => (done + failed === n ? resolve() : undefined);
    worker.on('completed', () => (done++, settle()));
    worker.on('failed', () => (failed++, settle()));
  });
  await worker.waitUntilReady();
  const started = performance.now();
  void worker.run();
  await finished;
  const elapsed = performance.now() - started;
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  if (failed > 0) throw new Error(`bench: ${failed} of ${n} jobs failed`);
  return (n / elapsed) * 1000;
}

/**
 * 20 000 no-op jobs through a raw BullMQ Worker and through the onceonly-wrapped one, on the same Redis,
 * at concurrency 1 and 50. The wrapped handler costs two store round trips per job (claim, complete).
 */
export async function bullmqThroughput(url: string, n: number, rounds: number, progress: (s: string) => void): Promise<{ rows: Row[]; notes: string[] }> {
  const client = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true });
  await client.connect();
  const prefix = `onceonly-bench-${uuidv7()}`;
  const { store, calls } = countingStore(new RedisStore({ client, prefix }));
  const rows: Row[] = [];
  const notes: string[] = [];
  const raw: Processor = async () => 'ok';
  const wrapped = onceonly(async () => 'ok', { scope: 'bench', store });
  try {
    for (const [concurrency, target] of [[1, 0.75], [50, 0.9]] as const) {
      progress(`bullmq: ${n} no-op jobs, concurrency ${concurrency}`);
      const before = calls();
      const result = await compare(rounds, () => drain(url, n, concurrency, wrapped), () => drain(url, n, concurrency, raw));
      const perJob = (calls() - before) / (n * rounds);
      rows.push({
        group: 'bullmq',
        name: `wrapped worker, concurrency ${concurrency}`,
        ...result,
        baselineName: `raw Worker, concurrency ${concurrency}`,
        unit: 'ops/s',
        target: { text: `≥ ${target.toFixed(2)} of baseline`, met: (r) => r.value / r.baseline >= target },
      });
      notes.push(`bullmq, concurrency ${concurrency}: ${perJob.toFixed(2)} store round trips per job (claim + complete)`);
    }
  } finally {
    await wrapped.close();
    await deleteByPrefix(client, prefix);
    client.disconnect();
  }
  return { rows, notes };
}
