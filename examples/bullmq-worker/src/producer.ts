/**
 * Adds stamped jobs to the `emails` queue, then adds some of them again, as a producer whose `add`
 * timed out and was retried would. The worker (worker.ts) sends each email once.
 *
 *   REDIS_URL=redis://127.0.0.1:6379 npm run producer -w examples/bullmq-worker -- 20
 */
import { addBulkStamped, stamp } from '@onceonly/bullmq';
import { Queue } from 'bullmq';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const count = Number(process.argv[2] ?? 20);
if (!Number.isInteger(count) || count < 1) {
  console.error(`producer: the job count must be a positive integer, got "${process.argv[2]}"`);
  process.exit(2);
}

const queue = new Queue('emails', { connection: { url } });
// Stamp first, so a retried add carries the same message ID as the first one.
const jobs = Array.from({ length: count }, (_, i) => ({ name: 'welcome', data: stamp({ to: `user${i}@example.com` }) }));
await addBulkStamped(queue, jobs);
const retried = jobs.filter((_, i) => i % 4 === 0);
await addBulkStamped(queue, retried);
console.log(`producer: added ${jobs.length} jobs and ${retried.length} retried adds (same message IDs) to "emails" on ${url}`);
await queue.close();
