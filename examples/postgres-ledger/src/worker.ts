/**
 * A BullMQ consumer that books each payment into a PostgreSQL ledger exactly once. The store is
 * `PostgresStore` in the same database, so the handler gets `tx` (a client inside BEGIN): the ledger
 * row and the onceonly record commit together, or neither does. A worker killed after the INSERT and
 * before the COMMIT leaves nothing behind; the job's re-run books it once. Run several at once.
 *
 *   DATABASE_URL=postgres://… REDIS_URL=redis://… npm run worker -w examples/postgres-ledger
 *
 * It prints every job as it settles; on Ctrl-C (or SIGTERM) it stops, prints a summary (with a check
 * that no message was booked twice) and exits, 0 when none was and no job failed. Settings (env): CONCURRENCY (5), WORK_MS
 * (time the handler spends after its INSERT, inside the transaction; 0), LEASE_MS (30 000), LOCK_MS
 * (BullMQ lockDuration, 30 000), STALLED_MS (BullMQ stalledInterval, 30 000), TRACE (print "open <id>"
 * after each INSERT, for the crash demo).
 */
import { createWorker } from '@onceonly/bullmq';
import { DedupProcessor } from '@onceonly/core';
import { type Job } from 'bullmq';
import { createPool, ledgerCounts, LEDGER, migrate, QUEUE, urlsFromEnv, type Booked, type Payment } from './shared.js';

const { databaseUrl, redisUrl } = urlsFromEnv('worker');
const number = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const concurrency = number('CONCURRENCY', 5);
const workMs = number('WORK_MS', 0);
const trace = process.env['TRACE'] === '1';

const pool = createPool(databaseUrl, concurrency);
const store = await migrate(pool);
const dedup = new DedupProcessor({ scope: QUEUE, store, leaseMs: number('LEASE_MS', 30_000), inProgressRetryMs: 250, recordResults: true });

const worker = createWorker(
  QUEUE,
  // `tx` is there because the store is transactional (its type comes from `dedup`'s store).
  async (job: Job<Payment>, { tx, id, token }): Promise<Booked> => {
    const { rows } = await tx.query<{ entry: string }>(
      `INSERT INTO ${LEDGER} (message_id, account, cents, fence) VALUES ($1, $2, $3, $4) RETURNING entry`,
      [id, job.data.account, job.data.cents, token],
    );
    if (trace) console.log(`open ${id}`);
    // More work inside the transaction (a fraud check, a call whose answer decides): the row is not
    // committed until the handler returns and onceonly's completion has run.
    if (workMs > 0) await new Promise((resolve) => setTimeout(resolve, workMs));
    return { entry: rows[0]!.entry, by: process.pid };
  },
  {
    connection: { url: redisUrl, maxRetriesPerRequest: null },
    concurrency,
    lockDuration: number('LOCK_MS', 30_000),
    stalledInterval: number('STALLED_MS', 30_000),
    maxStalledCount: 10,
    onceonly: { processor: dedup },
  },
);

let booked = 0;
let duplicates = 0;
let failed = 0;
dedup.on('outcome', (outcome) => {
  if (outcome.status === 'processed') {
    booked++;
    console.log(`booked ${outcome.id} (ledger entry ${(outcome.result as Booked).entry}${outcome.takeover ? ', re-run of a crashed attempt' : ''})`);
  } else if (outcome.status === 'duplicate') {
    duplicates++;
    console.log(`duplicate ${outcome.id}: booked before (entry ${(outcome.result as Booked | undefined)?.entry ?? '?'}), not booked again`);
  } else if (outcome.status === 'in-progress') {
    console.log(`in-progress ${outcome.id}: another attempt holds it; this job comes back in ${outcome.retryAfterMs} ms`);
  }
});
worker.on('failed', (job, error) => {
  failed++;
  console.error(`job ${job?.id}: failed: ${error.message}`);
});
console.log(`worker ${process.pid}: booking "${QUEUE}" into ${LEDGER}, concurrency ${concurrency}; Ctrl-C stops it with a summary`);

let stopping = false;
async function stop(why: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  await worker.close();
  await dedup.close();
  const ledger = await ledgerCounts(pool);
  console.log(`\nworker ${process.pid}: ${why}; booked ${booked}, skipped ${duplicates} duplicates${failed ? `, ${failed} jobs failed` : ''}.`);
  console.log(
    `worker ${process.pid}: ${LEDGER} holds ${ledger.rows} rows for ${ledger.messages} messages` +
      (ledger.duplicated === 0 ? ': none booked twice.' : `: ${ledger.duplicated} MESSAGES BOOKED TWICE.`),
  );
  await pool.end();
  process.exit(ledger.duplicated === 0 && failed === 0 ? 0 : 1);
}

process.on('SIGINT', () => void stop('stopped (Ctrl-C)'));
process.on('SIGTERM', () => void stop('stopped'));
