// BullMQ workers on PostgresStore with a ledger table in the same database (worker processes from
// fixtures/pg-worker.mjs, built packages): the handler books its row on ctx.tx, so the row commits with
// the completion. A worker SIGKILLed at each crash window, then a second worker after BullMQ's
// stalled-job check: every window ends with exactly one ledger row and a completed job. Also the
// database down (fail-closed, nothing marked) and duplicates under concurrency.
import { addBulkStamped, addStamped, onceonly, stamp } from '@onceonly/bullmq';
import { StoreUnavailableError } from '@onceonly/core';
import { PostgresStore } from '@onceonly/postgres';
import { Worker } from 'bullmq';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { startPostgresServer } from '../support/postgres-server.js';
import { usePostgres } from '../postgres/postgres-test-context.js';
import { BullmqTestContext } from './bullmq-test-context.js';

const PG_WORKER = fileURLToPath(new URL('./fixtures/pg-worker.mjs', import.meta.url));
// Short BullMQ locks and onceonly leases, so a killed worker's job is taken over within seconds.
const FAST = { LOCK_MS: 1_000, STALLED_MS: 500, LEASE_MS: 1_500, RETRY_MS: 200 };

const postgres = usePostgres();
const cleanup: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

interface Row {
  message_id: string;
  worker: string;
  fence: string;
}

/** A queue, and a schema holding the store's tables and the ledger. */
async function setUp() {
  const ctx = new BullmqTestContext(inject('redisUrl'));
  cleanup.push(() => ctx.close());
  const schema = (await postgres.store()).tables.schema;
  await postgres.admin.query(`CREATE TABLE "${schema}".ledger (n bigserial PRIMARY KEY, message_id text NOT NULL, worker text NOT NULL, fence bigint NOT NULL)`);
  return {
    ctx,
    schema,
    start: (env: Record<string, string | number>) => ctx.startWorker({ DATABASE_URL: postgres.url, SCHEMA: schema, ...env }, PG_WORKER),
    ledger: async () => (await postgres.admin.query<Row>(`SELECT message_id, worker, fence FROM "${schema}".ledger ORDER BY n`)).rows,
    record: async (id: string) =>
      (await postgres.admin.query<{ state: number }>(`SELECT state FROM "${schema}".onceonly_records WHERE scope = $1 AND id = $2`, [ctx.name, id])).rows[0],
  };
}

async function crashAndTakeOver(mode: string, point: string) {
  const t = await setUp();
  const first = await t.start({ ...FAST, NAME: 'first', MODE: mode });
  const data = stamp({ account: 'acc-1', cents: 250 });
  const job = await addStamped(t.ctx.queue, 'book', data, { attempts: 3 });
  const at = await first.at(point);
  await first.kill();
  const afterKill = await t.ledger();
  const second = await t.start({ ...FAST, NAME: 'second' });
  const done = await t.ctx.waitForState(job, ['completed', 'failed'], 30_000);
  return { ...t, first, second, at, done, afterKill, id: data.onceonlyId! };
}

describe('BullMQ on PostgreSQL: a worker SIGKILLed at each crash window, then a second one', () => {
  it('(1) killed before the effect: the second books the one row (a takeover)', async () => {
    const { second, done, ledger, id } = await crashAndTakeOver('crash-before-effect', 'start');
    expect(await done.getState()).toBe('completed');
    expect(done.returnvalue).toMatchObject({ by: 'second' });
    expect(await ledger()).toEqual([{ message_id: id, worker: 'second', fence: expect.any(String) }]);
    expect(second.outcomes().at(-1)).toMatchObject({ status: 'processed', takeover: true });
  });

  it('(2) killed after the row was written, before COMMIT: the row died with it; the second books one', async () => {
    const { second, done, ledger, afterKill, at, id } = await crashAndTakeOver('crash-after-effect', 'after-effect');
    expect(afterKill).toEqual([]);
    expect(await done.getState()).toBe('completed');
    const rows = await ledger();
    expect(rows).toEqual([{ message_id: id, worker: 'second', fence: expect.any(String) }]);
    expect(Number(rows[0]!.fence)).toBeGreaterThan(at.data.token as number);
    // The takeover re-ran the handler, and that is safe here: the first run's write never committed.
    expect(second.outcomes().at(-1)).toMatchObject({ status: 'processed', takeover: true });
  });

  it('(3) killed with the completion sent, before COMMIT: both rolled back; the second books one', async () => {
    const { done, ledger, afterKill, record, id } = await crashAndTakeOver('crash-before-commit', 'before-commit');
    expect(afterKill).toEqual([]);
    expect(await done.getState()).toBe('completed');
    expect((await ledger()).map((r) => r.worker)).toEqual(['second']);
    expect(await record(id)).toMatchObject({ state: 2 });
  });

  it('(4) killed after COMMIT, before BullMQ acked: the re-run is a duplicate answered with the recorded result', async () => {
    const { first, second, done, ledger, id } = await crashAndTakeOver('crash-after-commit', 'after-commit');
    expect(await done.getState()).toBe('completed');
    const firstRun = await first.at('start');
    expect(done.returnvalue).toEqual({ by: 'first', token: firstRun.data.token });
    expect((await ledger()).map((r) => r.worker)).toEqual(['first']);
    expect(second.outcomes()).toEqual([{ status: 'duplicate', id, takeover: false, replayed: true }]);
    expect(second.lines.some((l) => l.point === 'start')).toBe(false);
  });
});

describe('BullMQ on PostgreSQL', () => {
  it('two workers × concurrency 5, 300 jobs with 20 % re-added duplicates: one ledger row per message', async () => {
    const t = await setUp();
    await Promise.all([t.start({ NAME: 'w1', CONCURRENCY: 5, RETRY_MS: 100 }), t.start({ NAME: 'w2', CONCURRENCY: 5, RETRY_MS: 100 })]);
    const originals = Array.from({ length: 300 }, (_, i) => ({ name: 'book', data: stamp({ order: i }) }));
    const jobs = [...originals];
    originals.filter((_, i) => i % 5 === 0).forEach((job, k) => jobs.splice(Math.min(jobs.length, (k + 1) * 5 + 3), 0, { ...job }));
    await addBulkStamped(t.ctx.queue, jobs);
    const deadline = Date.now() + 60_000;
    let counts = await t.ctx.queue.getJobCounts('completed', 'failed');
    while (counts.completed! + counts.failed! < jobs.length && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      counts = await t.ctx.queue.getJobCounts('completed', 'failed');
    }
    expect(counts).toEqual({ completed: 360, failed: 0 });
    const rows = await t.ledger();
    expect(rows).toHaveLength(300);
    expect(new Set(rows.map((r) => r.message_id))).toEqual(new Set(originals.map((j) => j.data.onceonlyId)));
  });

  it('the database down: jobs fail with the retriable StoreUnavailableError, nothing is marked or booked, and they complete once it is back', async () => {
    const ctx = new BullmqTestContext(inject('redisUrl'));
    cleanup.push(() => ctx.close());
    const server = await startPostgresServer();
    cleanup.push(() => server.stop());
    const pool = new pg.Pool({ connectionString: server.url, connectionTimeoutMillis: 1_000, max: 4 });
    pool.on('error', () => {});
    cleanup.push(() => pool.end());
    const store = new PostgresStore({ pool });
    await store.migrate();
    await pool.query('CREATE TABLE ledger (message_id text NOT NULL)');
    let ran = 0;
    const wrapped = onceonly(
      async (_job, { tx, id }) => {
        ran++;
        await tx.query('INSERT INTO ledger (message_id) VALUES ($1)', [id]);
      },
      { store, scope: ctx.name },
    );
    cleanup.push(() => wrapped.close());
    const worker = new Worker(ctx.name, wrapped, { connection: { url: ctx.redisUrl, maxRetriesPerRequest: null } });
    cleanup.push(() => worker.close());
    const errors: Error[] = [];
    worker.on('failed', (_job, error) => errors.push(error));

    await server.kill();
    const data = stamp({ n: 1 });
    const job = await ctx.queue.add('book', data, { attempts: 30, backoff: { type: 'fixed', delay: 200 } });
    const until = Date.now() + 20_000;
    while (errors.length < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 25));
    expect(errors.length).toBeGreaterThanOrEqual(2);
    expect(errors.every((e) => e instanceof StoreUnavailableError && e.retriable && e.code === 'STORE_UNAVAILABLE')).toBe(true);
    expect(ran).toBe(0);
    expect(await job.getState()).not.toBe('failed');

    await server.restart();
    const done = await ctx.waitForState(job, ['completed', 'failed'], 20_000);
    expect(await done.getState()).toBe('completed');
    expect(ran).toBe(1);
    expect((await pool.query('SELECT message_id FROM ledger')).rows).toEqual([{ message_id: data.onceonlyId }]);
    expect((await store.get(ctx.name, data.onceonlyId!))?.state).toBe('completed');
  });
});
