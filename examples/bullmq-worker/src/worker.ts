/**
 * An effectively-once BullMQ worker: each email is sent once per message ID, however often its job is
 * added, retried or re-run after a stall. Run several of these at once; they share the Redis store.
 *
 *   REDIS_URL=redis://127.0.0.1:6379 npm run worker -w examples/bullmq-worker
 */
import { coalesceStore, createWorker } from '@onceonly/bullmq';
import { DedupProcessor, type OutcomeStatus } from '@onceonly/core';
import { RedisStore } from '@onceonly/redis';
import { Redis } from 'ioredis';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const client = new Redis(url, { maxRetriesPerRequest: 1 });

// One processor, made here so its events can be counted; coalesceStore lets concurrent jobs share round trips.
const dedup = new DedupProcessor({
  scope: 'emails',
  store: coalesceStore(new RedisStore({ client, prefix: 'example' })),
  recordResults: true,
  windowMs: 24 * 3_600_000,
});
const counts: Partial<Record<OutcomeStatus, number>> = {};
dedup.on('outcome', (outcome) => (counts[outcome.status] = (counts[outcome.status] ?? 0) + 1));

const worker = createWorker<{ to: string }>(
  'emails',
  async (job, { id, token }) => {
    // The side effect. A real mailer would pass `id` as its idempotency key and could guard a database
    // write with the fencing `token` (e.g. UPDATE ... WHERE fence < token).
    await client.rpush('emails:sent', `${job.data.to} ${id} ${token}`);
    return { sentTo: job.data.to, at: new Date().toISOString() };
  },
  {
    connection: { url, maxRetriesPerRequest: null },
    concurrency: 10,
    onceonly: { processor: dedup },
  },
);
worker.on('completed', (job, result) => console.log(`completed job ${job.id} → ${JSON.stringify(result)}`));
worker.on('failed', (job, error) => console.error(`failed ${job?.id}: ${error.message}`));
console.log(`worker: processing "emails" on ${url} (Ctrl-C to stop)`);

process.on('SIGINT', async () => {
  await worker.close();
  await dedup.close();
  console.log(`worker: outcomes ${JSON.stringify(counts)}`);
  client.disconnect();
  process.exit(0);
});
