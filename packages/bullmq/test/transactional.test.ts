// The adapter with a transactional store: the handler's context has `tx` (typed from the store, at
// runtime the store's transaction), and only then. The store here (core's test/ledger-store.ts) keeps a
// ledger in memory with commit/rollback; test/bullmq/postgres-crash.test.ts runs real workers on PostgreSQL.
import { createWorker, onceonly, stamp, type JobContext, type JobHandler } from '@onceonly/bullmq';
import { DedupProcessor, MemoryStore } from '@onceonly/core';
import type { Job } from 'bullmq';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { LedgerStore, type Tx } from '../../core/test/ledger-store.js';

type Payment = { account: string; cents: number };
const job = (data: unknown, extra: Partial<Job> = {}) => ({ id: '1', name: 'pay', queueName: 'q', data, attemptsMade: 0, ...extra }) as unknown as Job<Payment>;

describe('onceonly with a transactional store', () => {
  it("hands the store's transaction to the handler as ctx.tx: the write commits with the completion, once", async () => {
    const store = new LedgerStore();
    const wrapped = onceonly(
      async (j: Job<Payment>, { tx, id }) => {
        tx.write(`${id} ${j.data.account} ${j.data.cents}`);
        return 'booked';
      },
      { store, scope: 'payments', recordResults: true },
    );
    const data = stamp({ account: 'acc-1', cents: 250 });
    expect(await wrapped(job(data))).toBe('booked');
    expect(await wrapped(job(data, { id: '2' }))).toBe('booked'); // a duplicate: the recorded result
    expect(store.ledger).toEqual([`${data.onceonlyId} acc-1 250`]);
    await wrapped.close();
  });

  it('through a shared processor too', async () => {
    const store = new LedgerStore();
    const processor = new DedupProcessor({ scope: 'payments', store });
    const wrapped = onceonly(async (_job, { tx }) => tx.write('x'), { processor });
    await wrapped(job(stamp({ account: 'a', cents: 1 })));
    expect(store.ledger).toEqual(['x']);
    await processor.close();
  });
});

describe('types', () => {
  // Never called: these only have to compile (or fail to, where marked).
  const store = new LedgerStore();
  const memory = new MemoryStore();
  const connection = { url: 'redis://127.0.0.1:1' };

  it('tx is typed from the store, given as `store` or through `processor`', () => {
    void onceonly(async (_job, ctx) => expectTypeOf(ctx.tx).toEqualTypeOf<Tx>(), { store });
    void onceonly(async (_job, ctx) => expectTypeOf(ctx.tx).toEqualTypeOf<Tx>(), { processor: new DedupProcessor({ scope: 'q', store }) });
    void onceonly(async (job: Job<Payment>, { tx }) => {
      expectTypeOf(job.data).toEqualTypeOf<Payment>();
      expectTypeOf(tx).toEqualTypeOf<Tx>();
    }, { store });
    void onceonly<Payment, void, LedgerStore>(async (job, { tx }) => tx.write(job.data.account), { store });
    const build = () =>
      createWorker('payments', async (job: Job<Payment>, { tx, token }) => tx.write(`${job.data.account} ${token}`), { connection, onceonly: { store } });
    expectTypeOf(build).returns.toEqualTypeOf<ReturnType<typeof createWorker<Payment, void, LedgerStore>>>();
    expectTypeOf<JobContext<Payment, Tx>['tx']>().toEqualTypeOf<Tx>();
  });

  it('no tx with any other store, or none', () => {
    void onceonly(async (_job, ctx) => {
      // @ts-expect-error the memory store is not transactional
      void ctx.tx;
    }, { store: memory });
    void onceonly(async (_job, ctx) => {
      // @ts-expect-error no store: the memory store
      void ctx.tx;
    });
    void onceonly(async (_job, ctx) => {
      // @ts-expect-error a processor over the memory store
      void ctx.tx;
    }, { processor: new DedupProcessor({ scope: 'q' }) });
    const build = () =>
      createWorker('emails', async (_job, ctx) => {
        // @ts-expect-error the memory store is not transactional
        void ctx.tx;
      }, { connection, onceonly: { store: memory } });
    void build;
    expectTypeOf<JobContext<Payment>>().not.toHaveProperty('tx');
  });

  it("existing code keeps compiling: explicit data types, JobContext<D>, JobHandler<D, R>", () => {
    const handler: JobHandler<Payment, string> = async (job, { id, token, signal, takeover, lockToken }) => {
      expectTypeOf(job.data).toEqualTypeOf<Payment>();
      void [id, token, signal, takeover, lockToken];
      return 'ok';
    };
    void onceonly<Payment>(handler, { store: memory });
    void onceonly<Payment, string>(handler, { store, scope: 'q' }); // a transactional store the handler ignores
    const build = () =>
      createWorker<Payment>('emails', async (job, context: JobContext<Payment>) => {
        expectTypeOf(context.job).toEqualTypeOf<Job<Payment>>();
        return job.data.cents;
      }, { connection, onceonly: { store: memory, recordResults: true } });
    void build;
    interface Extended extends JobContext<Payment> {
      readonly traceId: string;
    }
    expectTypeOf<Extended['job']>().toEqualTypeOf<Job<Payment>>();
  });
});
