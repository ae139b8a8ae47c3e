// Crash windows with real processes (test/postgres/fixtures/crash-worker.mjs, from the built
// packages) and a ledger table in the same PostgreSQL as the store: a consumer SIGKILLed after its
// handler's writes and before COMMIT, or frozen (SIGSTOP) past its lease while another consumer takes
// the message over. With PostgresStore the writes ride the completion's transaction: the ledger ends
// with exactly one row per message. The same scenarios on the Redis store (default takeover policy
// `retry`) end with two rows: the duplicate the transactional mode removes.
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { WorkerProcess } from '../bullmq/worker-process.js';
import { sleep, usePostgres } from './postgres-test-context.js';

const SCRIPT = fileURLToPath(new URL('./fixtures/crash-worker.mjs', import.meta.url));
const LEASE_MS = 1_500;

const postgres = usePostgres();
const running: WorkerProcess[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((w) => (w.resume(), w.kill())));
});

interface Row {
  message_id: string;
  worker: string;
  fence: string;
}

/** A fresh schema with the store's tables and a ledger; `consumer()` starts a process on it. */
async function scenario(store: 'postgres' | 'redis') {
  const schema = (await postgres.store()).tables.schema;
  await postgres.admin.query(`CREATE TABLE "${schema}".ledger (n bigserial PRIMARY KEY, message_id text NOT NULL, worker text NOT NULL, fence bigint NOT NULL)`);
  const id = `pay-${randomBytes(4).toString('hex')}`;
  const env = { DATABASE_URL: postgres.url, SCHEMA: schema, ID: id, STORE: store, LEASE_MS, REDIS_URL: inject('redisUrl'), PREFIX: `oo-crash-${schema}` };
  return {
    id,
    consumer(name: string, mode: string): WorkerProcess {
      const worker = new WorkerProcess({ ...env, NAME: name, MODE: mode }, SCRIPT);
      running.push(worker);
      return worker;
    },
    async ledger(): Promise<Row[]> {
      return (await postgres.admin.query<Row>(`SELECT message_id, worker, fence FROM "${schema}".ledger ORDER BY n`)).rows;
    },
    async record() {
      const { rows } = await postgres.admin.query<{ state: number; token: string }>(
        `SELECT state, token::text FROM "${schema}".onceonly_records WHERE scope = 'ledger' AND id = $1`,
        [id],
      );
      return rows[0];
    },
  };
}

const outcome = async (worker: WorkerProcess) => (await worker.waitFor((l) => l.kind === 'OUTCOME', 30_000)).data;

describe('(a) SIGKILL after the handler wrote, before COMMIT; then a redelivery', () => {
  it('PostgresStore: the writes died with the connection; the redelivery (a takeover) books the one row', async () => {
    const s = await scenario('postgres');
    const first = s.consumer('first', 'crash-after-effect');
    const at = await first.at('after-effect');
    await first.kill();
    expect(await s.ledger()).toEqual([]); // never committed
    const second = s.consumer('second', 'normal');
    expect(await outcome(second)).toMatchObject({ status: 'processed', takeover: true });
    const rows = await s.ledger();
    expect(rows).toEqual([{ message_id: s.id, worker: 'second', fence: expect.any(String) }]);
    expect(Number(rows[0]!.fence)).toBeGreaterThan(at.data.token as number);
    expect(await s.record()).toMatchObject({ state: 2 }); // completed by the second
  });

  it('PostgresStore: killed with the completion sent too, before COMMIT: both rolled back; one row', async () => {
    const s = await scenario('postgres');
    const first = s.consumer('first', 'crash-before-commit');
    await first.at('before-commit');
    await first.kill();
    expect(await s.ledger()).toEqual([]);
    expect(await s.record()).toMatchObject({ state: 1 }); // the completion rolled back with the effect
    const second = s.consumer('second', 'normal');
    expect(await outcome(second)).toMatchObject({ status: 'processed', takeover: true });
    expect((await s.ledger()).map((r) => r.worker)).toEqual(['second']);
  });

  it('PostgresStore: killed right after COMMIT: the redelivery is a duplicate; one row', async () => {
    const s = await scenario('postgres');
    const first = s.consumer('first', 'crash-after-commit');
    await first.at('after-commit');
    await first.kill();
    const second = s.consumer('second', 'normal');
    expect(await outcome(second)).toMatchObject({ status: 'duplicate' });
    expect((await s.ledger()).map((r) => r.worker)).toEqual(['first']);
  });

  it('contrast, RedisStore with onTakeover "retry": the first write had committed on its own; two rows', async () => {
    const s = await scenario('redis');
    const first = s.consumer('first', 'crash-after-effect');
    await first.at('after-effect');
    await first.kill();
    expect((await s.ledger()).map((r) => r.worker)).toEqual(['first']);
    const second = s.consumer('second', 'normal');
    expect(await outcome(second)).toMatchObject({ status: 'processed', takeover: true });
    expect((await s.ledger()).map((r) => r.worker)).toEqual(['first', 'second']); // the duplicate effect
  });
});

describe('(b) an owner frozen (SIGSTOP) past its lease while another takes over, then resumed', () => {
  async function frozenOwner(store: 'postgres' | 'redis') {
    const s = await scenario(store);
    const first = s.consumer('first', 'pause-after-effect');
    const at = await first.at('after-effect');
    first.pause();
    await sleep(LEASE_MS + 300); // its lease runs out: its heartbeats are frozen with it
    const second = s.consumer('second', 'normal');
    const taken = await outcome(second);
    const duringPause = await s.ledger();
    first.resume();
    first.send('go');
    await first.at('resumed');
    // Its handler returns; the completion, the transaction's last statement, fails the fence: rollback.
    const stale = await outcome(first);
    return { s, at, taken, duringPause, stale, rows: await s.ledger() };
  }

  it("PostgresStore: the resumed owner's writes roll back (lease-lost); one row, the new owner's", async () => {
    const { s, at, taken, duringPause, stale, rows } = await frozenOwner('postgres');
    expect(taken).toMatchObject({ status: 'processed', takeover: true });
    expect(taken.token as number).toBeGreaterThan(at.data.token as number);
    expect(duringPause.map((r) => r.worker)).toEqual(['second']); // the frozen owner's row was never visible
    expect(stale).toMatchObject({ status: 'lease-lost', error: 'LEASE_LOST' });
    expect(rows).toEqual([{ message_id: s.id, worker: 'second', fence: String(taken.token) }]);
    expect(await s.record()).toMatchObject({ state: 2, token: String(taken.token) });
  });

  it('contrast, RedisStore: the frozen owner had already written; two rows, and its outcome is lease-lost', async () => {
    const { taken, stale, rows } = await frozenOwner('redis');
    expect(taken).toMatchObject({ status: 'processed', takeover: true });
    expect(stale).toMatchObject({ status: 'lease-lost' });
    expect(rows.map((r) => r.worker)).toEqual(['first', 'second']);
  });
});
