/**
 * An effectively-once BullMQ worker: each email is sent once per message ID, however often its job is
 * added, retried or re-run after a stall. Run several of these at once; they share the Redis store.
 *
 * It prints every job as it settles (sent, or a duplicate of an earlier job and not sent again) and,
 * once the producer's jobs are all done, a summary; then it exits.
 *
 *   REDIS_URL=redis://127.0.0.1:6379 npm run worker -w examples/bullmq-worker
 */
import { coalesceStore, createWorker } from '@onceonly/bullmq';
import { DedupProcessor, type OutcomeStatus } from '@onceonly/core';
import { RedisStore } from '@onceonly/redis';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { PRODUCER_DONE_KEY, type ProducerDone, type Sent, type Welcome } from './shared.js';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const started = Date.now();
// The store's own connection: a BullMQ Worker's needs maxRetriesPerRequest: null, which would make the
// store wait out an outage instead of failing fast.
const client = new Redis(url, { maxRetriesPerRequest: 1 });

// One processor, made here so its outcomes can be counted; coalesceStore lets concurrent jobs share
// round trips (createWorker does that itself when it makes the processor).
const dedup = new DedupProcessor({
  scope: 'emails',
  store: coalesceStore(new RedisStore({ client, prefix: 'example' })),
  recordResults: true,
  windowMs: 24 * 3_600_000,
});
const outcomes: Partial<Record<OutcomeStatus, number>> = {};
dedup.on('outcome', (outcome) => {
  outcomes[outcome.status] = (outcomes[outcome.status] ?? 0) + 1;
  if (outcome.status === 'in-progress') {
    console.log(`message ${outcome.id}: another job is sending it right now; this job comes back in ${outcome.retryAfterMs} ms`);
  }
});

const worker = createWorker<Welcome, Sent>(
  'emails',
  async (job, { id, token }): Promise<Sent> => {
    // The side effect. A real mailer would take `id` as its idempotency key, and a database write could
    // be guarded with the fencing `token` (e.g. UPDATE ... WHERE fence < token).
    await client.rpush('emails:sent', `${job.data.to} ${id} ${token}`);
    return { sentTo: job.data.to, jobId: job.id, at: new Date().toISOString() };
  },
  {
    connection: { url, maxRetriesPerRequest: null },
    concurrency: 10,
    onceonly: { processor: dedup },
  },
);

let sent = 0;
const duplicates: string[] = [];
let failed = 0;
worker.on('completed', (job, result) => {
  // A duplicate's return value is the result recorded by the job that sent the email.
  if (result.jobId === job.id) {
    sent++;
    console.log(`job ${job.id}: sent to ${result.sentTo}   [sent ${sent}, duplicates ${duplicates.length}]`);
  } else {
    duplicates.push(job.id ?? '?');
    console.log(`job ${job.id}: duplicate of job ${result.jobId} (${result.sentTo}), not sent again   [sent ${sent}, duplicates ${duplicates.length}]`);
  }
});
worker.on('failed', (job, error) => {
  failed++;
  console.error(`job ${job?.id}: failed: ${error.message}`);
});
console.log(`worker: processing "emails" on ${url}; exits once the producer's jobs are done (or on Ctrl-C)`);

// Done once the producer has added all its jobs and the queue has none left to run, whichever worker ran
// them. A marker older than this worker counts only if its jobs were still queued when the worker started.
const queue = new Queue('emails', { connection: { url } });
const unfinished = async () => {
  const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children');
  return Object.values(counts).reduce((sum, n) => sum + n, 0);
};
const queuedAtStart = (await unfinished()) > 0;
if (!queuedAtStart && (await client.exists(PRODUCER_DONE_KEY))) {
  console.log("worker: waiting for the producer (its last run's jobs are all done)");
}
let finishing = false;
const poll = setInterval(() => void checkDone().catch((error: unknown) => console.error(`worker: ${String(error)}`)), 500);

async function checkDone(): Promise<void> {
  if (finishing) return;
  const marker = await client.get(PRODUCER_DONE_KEY);
  if (marker === null) return;
  const producer = JSON.parse(marker) as ProducerDone;
  if (producer.at < started && !queuedAtStart) return; // an earlier run's producer: wait for the next one
  if ((await unfinished()) > 0) return;
  await finish(`all ${producer.jobs} jobs of the producer are done`);
}

async function finish(why: string): Promise<void> {
  if (finishing) return;
  finishing = true;
  clearInterval(poll);
  await worker.close();
  await dedup.close();
  await queue.close();
  const list = await client.lrange('emails:sent', 0, -1);
  const distinct = new Set(list.map((entry) => entry.split(' ')[1])).size;
  console.log(`\nworker: ${why}.`);
  console.log(`worker: this worker sent ${sent} emails and skipped ${duplicates.length} duplicates${duplicates.length ? ` (jobs ${duplicates.join(', ')})` : ''}${failed ? `; ${failed} jobs failed` : ''}.`);
  console.log(
    `worker: emails:sent (every run so far) holds ${list.length} emails for ${distinct} distinct message IDs` +
      (list.length === distinct ? ': none was sent twice.' : ': SOME WERE SENT TWICE.'),
  );
  console.log(`worker: outcomes ${JSON.stringify(outcomes)}`);
  client.disconnect();
  process.exit(list.length === distinct && failed === 0 ? 0 : 1);
}

process.on('SIGINT', () => void finish('stopped (Ctrl-C)'));
