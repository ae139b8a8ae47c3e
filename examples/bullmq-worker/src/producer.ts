/**
 * Adds stamped jobs to the `emails` queue, then adds some of them again, as a producer whose `add`
 * timed out and was retried would. The worker (worker.ts) sends each email once, and exits once every
 * job added here is done.
 *
 *   REDIS_URL=redis://127.0.0.1:6379 npm run producer -w examples/bullmq-worker -- 20
 */
import { addBulkStamped, stamp } from '@onceonly/bullmq';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { PRODUCER_DONE_KEY, type ProducerDone } from './shared.js';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const count = Number(process.argv[2] ?? 20);
if (!Number.isInteger(count) || count < 1) {
  console.error(`producer: the job count must be a positive integer, got "${process.argv[2]}"`);
  process.exit(2);
}

const queue = new Queue('emails', { connection: { url } });
// Stamp first, so a retried add carries the same message ID as the first one.
const jobs = Array.from({ length: count }, (_, i) => ({ name: 'welcome', data: stamp({ to: `user${i}@example.com` }) }));
const added = await addBulkStamped(queue, jobs);
const retried = jobs.filter((_, i) => i % 4 === 0);
const readded = await addBulkStamped(queue, retried);

console.log(`producer: added ${added.length} jobs (ids ${added[0]!.id}–${added.at(-1)!.id}) to "emails" on ${url}`);
console.log(
  `producer: then ${readded.length} retried adds with the same message IDs: ` +
    readded.map((job, i) => `job ${job.id} repeats job ${added[(i * 4)]!.id}`).join(', '),
);

// Tell the workers that every job is in the queue: they exit once the queue has none left to run.
const redis = new Redis(url);
const done: ProducerDone = { jobs: added.length + readded.length, at: Date.now() };
await redis.set(PRODUCER_DONE_KEY, JSON.stringify(done));
redis.disconnect();
await queue.close();
