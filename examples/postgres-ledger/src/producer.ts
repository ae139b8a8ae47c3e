/**
 * Adds stamped payment jobs to the `payments` queue, then adds a quarter of them again, as a producer
 * whose `add` timed out and was retried would. The workers book each payment once.
 *
 *   DATABASE_URL=postgres://… REDIS_URL=redis://… npm run producer -w examples/postgres-ledger -- 200
 */
import { addBulkStamped, stamp } from '@onceonly/bullmq';
import { Queue } from 'bullmq';
import { QUEUE, urlsFromEnv, type Payment } from './shared.js';

const { redisUrl } = urlsFromEnv('producer');
const count = Number(process.argv[2] ?? 200);
if (!Number.isInteger(count) || count < 1) {
  console.error(`producer: the payment count must be a positive integer, got "${process.argv[2]}"`);
  process.exit(2);
}

const queue = new Queue<Payment>(QUEUE, { connection: { url: redisUrl } });
// Stamp first, so a retried add carries the same message ID as the first one.
// Attempts and a backoff: a job whose worker died, or that met the database down, is tried again.
const opts = { attempts: 5, backoff: { type: 'fixed', delay: 500 } };
const jobs = Array.from({ length: count }, (_, i) => ({ name: 'payment', data: stamp({ account: `acc-${i % 17}`, cents: 100 + i }), opts }));
const retried = jobs.filter((_, i) => i % 4 === 0);
for (let i = 0; i < jobs.length; i += 500) await addBulkStamped(queue, jobs.slice(i, i + 500));
await addBulkStamped(queue, retried);
console.log(`producer: added ${count} payments to "${QUEUE}", then ${retried.length} retried adds of the same messages (${count + retried.length} jobs)`);
await queue.close();
