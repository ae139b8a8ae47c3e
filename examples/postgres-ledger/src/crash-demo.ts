/**
 * The crash demo: payments are booked by a worker process that is SIGKILLed three times while it
 * works (each time with handlers inside their transactions: ledger rows written, not yet committed)
 * and started again, until every job is done. Then the ledger is checked: every payment booked,
 * none twice.
 *
 *   npm run build && npm run crash-demo -w examples/postgres-ledger
 *
 * Uses DATABASE_URL and REDIS_URL when set; otherwise it starts a throwaway PostgreSQL cluster and
 * redis-server on free loopback ports (the repository's test support: the `postgres` and
 * `redis-server` binaries must be installed) and stops them at the end. It resets the example's tables
 * and queue first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { resolvePostgres } from '../../../test/support/postgres-server.js';
import { resolveRedis } from '../../../test/support/redis-server.js';
import { createPool, LEDGER, ledgerCounts, migrate, QUEUE, SCHEMA } from './shared.js';

const PAYMENTS = Number(process.env['PAYMENTS'] ?? 200);
const READDED = Math.ceil(PAYMENTS / 4); // the producer adds a quarter of them again
const KILLS = 3;
const verbose = process.env['VERBOSE'] === '1';
// Short BullMQ locks and onceonly leases, so a killed worker's jobs are taken over within seconds,
// and 40 ms of work after each INSERT, so most kills land inside a transaction.
const WORKER_ENV = { CONCURRENCY: '5', WORK_MS: '40', LEASE_MS: '1500', LOCK_MS: '1000', STALLED_MS: '500', TRACE: '1' };
const script = (name: string) => fileURLToPath(new URL(`./${name}.js`, import.meta.url));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const postgres = await resolvePostgres();
const redisServer = await resolveRedis();
const env = { ...process.env, DATABASE_URL: postgres.url, REDIS_URL: redisServer.url };
console.log(`crash demo: PostgreSQL (${postgres.source}), Redis (${redisServer.source})`);

let exitCode: number;
const children = new Set<ChildProcess>();
try {
  // A clean slate: the example's tables and its queue.
  const pool = createPool(postgres.url, 1);
  await migrate(pool);
  await pool.query(`TRUNCATE ${LEDGER}, ${SCHEMA}.onceonly_records`);
  const queue = new Queue(QUEUE, { connection: { url: redisServer.url } });
  await queue.obliterate({ force: true });

  const run = (name: string, args: string[] = [], extra: Record<string, string> = {}) => {
    const child = spawn(process.execPath, [script(name), ...args], { env: { ...env, ...extra }, stdio: ['ignore', 'pipe', 'inherit'] });
    children.add(child);
    child.once('exit', () => children.delete(child));
    return child;
  };
  const exited = (child: ChildProcess) =>
    child.exitCode !== null || child.signalCode !== null ? Promise.resolve(child.exitCode) : new Promise<number | null>((resolve) => child.once('exit', resolve));

  const producer = run('producer', [String(PAYMENTS)]);
  producer.stdout!.pipe(process.stdout);
  if ((await exited(producer)) !== 0) throw new Error('the producer failed');

  // One worker at a time; each but the last is SIGKILLed once it has booked some payments.
  const open = new Set<string>(); // IDs whose row the current worker wrote but has not committed
  let booked = 0;
  let reruns = 0;
  let duplicates = 0;
  const killedWithOpen: number[] = [];
  const startWorker = () => {
    const worker = run('worker', [], WORKER_ENV);
    createInterface({ input: worker.stdout! }).on('line', (line) => {
      const [word, id] = line.split(' ');
      if (word === 'open') open.add(id!);
      else if (word === 'booked') {
        open.delete(id!);
        booked++;
        if (line.includes('re-run')) reruns++;
      } else if (word === 'duplicate') duplicates++;
      if (line === '') return;
      if (verbose || (word !== 'open' && word !== 'booked' && word !== 'duplicate' && word !== 'in-progress') || line.includes('re-run')) {
        console.log(`  [worker ${worker.pid}] ${line}`);
      }
    });
    return worker;
  };

  for (let kill = 1; kill <= KILLS; kill++) {
    open.clear();
    const worker = startWorker();
    const target = booked + Math.floor(PAYMENTS / (KILLS + 2));
    const deadline = Date.now() + 30_000;
    while ((booked < target || open.size === 0) && Date.now() < deadline && worker.exitCode === null) await sleep(5);
    const inFlight = open.size;
    worker.kill('SIGKILL');
    await exited(worker);
    killedWithOpen.push(inFlight);
    console.log(`crash demo: kill ${kill}: SIGKILLed worker ${worker.pid} with ${inFlight} handlers inside their transactions (rows written, not committed); booked so far ${booked}`);
  }
  // The last worker runs until every job has settled, then stops with its summary (SIGTERM).
  open.clear();
  const last = startWorker();
  const settled = async () => {
    const { completed = 0, failed = 0 } = await queue.getJobCounts('completed', 'failed');
    return completed + failed;
  };
  const deadline = Date.now() + 90_000;
  while ((await settled()) < PAYMENTS + READDED && Date.now() < deadline && last.exitCode === null) await sleep(100);
  if (last.exitCode !== null) throw new Error(`the last worker exited early (${last.exitCode})`);
  if (Date.now() >= deadline) throw new Error('the last worker did not finish within 90 s');
  last.kill('SIGTERM');
  const lastCode = await exited(last);

  const counts = await queue.getJobCounts('completed', 'failed');
  const ledger = await ledgerCounts(pool);
  const ok = ledger.duplicated === 0 && ledger.messages === PAYMENTS && counts.failed === 0 && lastCode === 0;
  const afterCommit = duplicates - READDED; // jobs whose worker died after COMMIT, before BullMQ heard
  console.log(`
crash demo: ${PAYMENTS} payments, ${READDED} of them added twice; ${KILLS} workers SIGKILLed mid-flight (${killedWithOpen.join(', ')} uncommitted bookings at the kills).
  jobs:      ${counts.completed} completed, ${counts.failed} failed
  handlers:  ${booked} bookings reported (${reruns} of them re-runs of attempts that died), ${duplicates} duplicates skipped` +
    (afterCommit > 0 ? ` (${READDED} re-added jobs, and ${afterCommit} re-runs of jobs whose worker died after its COMMIT)` : '') +
    `
  ledger:    ${ledger.rows} rows for ${ledger.messages} payments; booked twice: ${ledger.duplicated}
  ${ok ? 'every payment booked exactly once: the rows written by killed workers rolled back with their transactions.' : 'UNEXPECTED: see the counts above.'}`);
  exitCode = ok ? 0 : 1;
  await queue.close();
  await pool.end();
} finally {
  for (const child of children) child.kill('SIGKILL');
  await redisServer.stop();
  await postgres.stop();
}
process.exit(exitCode);
