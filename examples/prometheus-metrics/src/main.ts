/**
 * Starts the worker of `service.ts` on the `emails` queue, serving its metrics at /metrics, and (with a
 * count) adds that many stamped jobs plus a retried add of every fifth, so the duplicate series move.
 *
 *   REDIS_URL=redis://127.0.0.1:6379 PORT=9464 npm run start -w examples/prometheus-metrics -- 100
 *   curl -s http://127.0.0.1:9464/metrics | grep onceonly_
 *
 * Stop it with Ctrl-C.
 */
import { addBulkStamped, stamp } from '@onceonly/bullmq';
import { Queue } from 'bullmq';
import { startService } from './service.js';

const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const port = Number(process.env.PORT ?? 9464);
const count = Number(process.argv[2] ?? 0);
if (!Number.isInteger(count) || count < 0) {
  console.error(`prometheus-metrics: the job count must be a non-negative integer, got "${process.argv[2]}"`);
  process.exit(2);
}

const service = await startService({ redisUrl, queue: 'emails', port });
console.log(`prometheus-metrics: worker on "emails" (${redisUrl}); metrics at ${service.metricsUrl}`);

if (count > 0) {
  const queue = new Queue('emails', { connection: { url: redisUrl } });
  const jobs = Array.from({ length: count }, (_, i) => ({ name: 'welcome', data: stamp({ to: `user${i}@example.com` }) }));
  await addBulkStamped(queue, jobs);
  await addBulkStamped(queue, jobs.filter((_, i) => i % 5 === 0)); // retried adds: duplicates
  await queue.close();
  console.log(`prometheus-metrics: added ${count} jobs and ${Math.ceil(count / 5)} retried adds`);
}

const stop = async () => {
  // Closing waits for running jobs and Redis; if Redis is gone, do not wait forever.
  setTimeout(() => process.exit(1), 10_000).unref();
  await service.close();
  process.exit(0);
};
process.once('SIGINT', () => void stop());
process.once('SIGTERM', () => void stop());
