import { createWorker, onceonly, stamp, type JobHandler, type OnceOnlyWorkerOptions } from '@onceonly/bullmq';
import { HandlerTimeoutError, type Outcome } from '@onceonly/core';
import { RedisStore } from '@onceonly/redis';
import { Worker, type Job } from 'bullmq';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { connectRedis } from '../support/redis-server.js';
import { BullmqTestContext } from './bullmq-test-context.js';

// Issue 9, item 11: a handler that never resolves must not hang the job, the worker's close, or a
// concurrency slot.

const cleanup: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

async function setup() {
  const ctx = new BullmqTestContext(inject('redisUrl'));
  cleanup.push(() => ctx.close());
  const client = await connectRedis(ctx.redisUrl);
  cleanup.push(() => client.disconnect());
  const store = new RedisStore({ client, prefix: ctx.prefix });
  const connection = { url: ctx.redisUrl, maxRetriesPerRequest: null };
  return { ctx, store, connection };
}

/** `promise`'s value, or 'timed out' after `ms` (so a hang fails the test instead of stalling it). */
function within<T>(promise: Promise<T>, ms: number): Promise<T | 'timed out'> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<'timed out'>((resolve) => (timer = setTimeout(() => resolve('timed out'), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const never = () => new Promise<never>(() => {});

interface Run {
  job: string;
  takeover: boolean;
  signal: AbortSignal;
}

describe('BullMQ: a handler that never resolves', () => {
  it.each([
    ['retry', 'completed', /^/],
    ['dead-letter', 'failed', /^TAKEOVER_DEAD_LETTER: /],
  ] as const)(
    'handlerTimeoutMs: the attempt fails with HANDLER_TIMEOUT, the record stays in progress until its lease ends, then the takeover follows onTakeover %s',
    async (policy, expected, reason) => {
      const { ctx, store, connection } = await setup();
      const runs: Run[] = [];
      const outcomes: Outcome[] = [];
      const failures: Error[] = [];
      const handler: JobHandler = async (job, { takeover, signal }) => {
        runs.push({ job: job.id!, takeover, signal });
        return runs.length === 1 ? never() : 'second run';
      };
      const wrapped = onceonly(handler, {
        store,
        scope: ctx.name,
        leaseMs: 600,
        handlerTimeoutMs: 150,
        inProgressRetryMs: 100,
        recordResults: true,
        onTakeover: policy,
      });
      for (const p of wrapped.processors()) p.on('outcome', (o) => outcomes.push(o));
      const worker = new Worker(ctx.name, wrapped, { connection });
      cleanup.push(() => Promise.all([worker.close(), wrapped.close()]));
      worker.on('failed', (_job, error) => failures.push(error));

      const added = await ctx.queue.add('task', stamp({ n: 1 }), { attempts: 3, backoff: { type: 'fixed', delay: 50 } });
      const done = await ctx.waitForState(added, ['completed', 'failed'], 20_000);
      expect(await done.getState()).toBe(expected);

      // The first run was aborted with the timeout, and its attempt failed with it (retriable: BullMQ retried).
      expect(runs[0]!.signal.aborted).toBe(true);
      expect(runs[0]!.signal.reason).toBeInstanceOf(HandlerTimeoutError);
      expect(failures[0]).toBeInstanceOf(HandlerTimeoutError);
      expect((failures[0] as HandlerTimeoutError).code).toBe('HANDLER_TIMEOUT');
      // The handler may still be applying its effect: until its lease ran out, the retry was parked.
      const statuses = outcomes.map((o) => o.status);
      expect(statuses[0]).toBe('failed');
      expect(statuses).toContain('in-progress');
      expect(done.attemptsMade).toBe(2); // the timed-out attempt and the takeover; parking used none

      if (policy === 'retry') {
        expect(done.returnvalue).toBe('second run');
        expect(runs).toHaveLength(2);
        expect(runs[1]!.takeover).toBe(true);
        expect(outcomes.at(-1)).toMatchObject({ status: 'processed', takeover: true });
      } else {
        expect(done.failedReason).toMatch(reason);
        expect(runs).toHaveLength(1); // dead-lettered for a human, not run again
      }
    },
  );

  it.each([
    ['createWorker', 'ignores', false],
    ['createWorker', 'honours', true],
    ['a plain Worker closed with the wrapper', 'ignores', false],
  ] as const)(
    'close resolves within a bound (%s, a handler that %s the abort); the job goes back to the queue without using an attempt, and the next worker completes it',
    async (build, _how, honours) => {
      const { ctx, store, connection } = await setup();
      const graceMs = 300;
      const options: OnceOnlyWorkerOptions = { store, scope: ctx.name, leaseMs: 800, inProgressRetryMs: 100, closeGraceMs: graceMs };
      const runs: Run[] = [];
      let started!: () => void;
      const running = new Promise<void>((resolve) => (started = resolve));
      const stuck: JobHandler = async (job, { takeover, signal }) => {
        runs.push({ job: job.id!, takeover, signal });
        started();
        if (honours) return new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error)));
        return never();
      };
      let close: () => Promise<unknown>;
      if (build === 'createWorker') {
        const worker = createWorker(ctx.name, stuck, { connection, onceonly: options });
        close = () => worker.close();
      } else {
        const wrapped = onceonly(stuck, options);
        const worker = new Worker(ctx.name, wrapped, { connection });
        close = () => Promise.all([worker.close(), wrapped.close()]);
      }
      // attempts: 1 (BullMQ's default): a close that failed the job would lose it.
      const added = await ctx.queue.add('task', stamp({ n: 1 }));
      await running;

      const t0 = Date.now();
      const closed = await within(close(), 10_000);
      const elapsed = Date.now() - t0;
      expect(closed).not.toBe('timed out');
      expect(elapsed).toBeGreaterThanOrEqual(graceMs - 5); // the grace period was given
      expect(elapsed).toBeLessThan(graceMs + 3_000);
      expect(runs[0]!.signal.aborted).toBe(true);
      expect((runs[0]!.signal.reason as { code?: string }).code).toBe('PROCESSOR_CLOSED');
      const back = (await ctx.queue.getJob(added.id!))!;
      expect(['delayed', 'wait']).toContain(await back.getState());
      expect(back.attemptsMade).toBe(0);

      // Another worker (as after a deploy) completes it: at once if the claim was released, as a takeover
      // once the lease ran out if the handler was given up on.
      const next = createWorker(
        ctx.name,
        async (job, { takeover, signal }) => {
          runs.push({ job: job.id!, takeover, signal });
          return 'done';
        },
        { connection, onceonly: { ...options, closeGraceMs: 0 } },
      );
      cleanup.push(() => next.close());
      const done = await ctx.waitForState(added, ['completed', 'failed'], 15_000);
      expect(await done.getState()).toBe('completed');
      expect(done.returnvalue).toBe('done');
      expect(done.attemptsMade).toBe(1);
      expect(runs).toHaveLength(2);
      expect(runs[1]!.takeover).toBe(!honours);
    },
  );

  it('worker.close(true) (force) aborts running handlers at once instead of after the grace period', async () => {
    const { ctx, store, connection } = await setup();
    let signal: AbortSignal | undefined;
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const worker = createWorker(
      ctx.name,
      async (_job, context) => {
        signal = context.signal;
        started();
        return never();
      },
      { connection, onceonly: { store, closeGraceMs: 60_000 } },
    );
    await ctx.queue.add('task', stamp({ n: 1 }));
    await running;
    const t0 = Date.now();
    expect(await within(worker.close(true), 10_000)).not.toBe('timed out');
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(signal?.aborted).toBe(true);
  });

  it('a duplicate of a job this worker is running is delayed without using an attempt, and does not hold a concurrency slot', async () => {
    const { ctx, store, connection } = await setup();
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const runs: string[] = [];
    const outcomes: Outcome[] = [];
    const wrapped = onceonly(
      async (job: Job) => {
        runs.push(`${job.name}#${job.id}`);
        if (job.name === 'slow') {
          started();
          await gate;
        }
        return job.name;
      },
      { store, scope: ctx.name, inProgressRetryMs: 100, recordResults: true },
    );
    for (const p of wrapped.processors()) p.on('outcome', (o) => outcomes.push(o));
    // Two slots: the slow job takes one; its duplicate must not sit in the other.
    const worker = new Worker(ctx.name, wrapped, { connection, concurrency: 2 });
    cleanup.push(() => Promise.all([worker.close(), wrapped.close()]));
    cleanup.push(() => open()); // runs first: a failed assertion must not leave the slow job running

    const data = stamp({ report: 'q3' });
    const first = await ctx.queue.add('slow', data, { attempts: 1 });
    await running;
    const repeat = await ctx.queue.add('slow', data, { attempts: 1 });
    const parked = await ctx.waitForState(repeat, ['delayed'], 5_000);
    expect(parked.attemptsMade).toBe(0);
    expect(outcomes.some((o) => o.status === 'in-progress' && o.id === data.onceonlyId)).toBe(true);

    // While the first still runs, an unrelated job gets the other slot and completes.
    const other = await ctx.queue.add('other', stamp({ n: 2 }), { attempts: 1 });
    const otherDone = await ctx.waitForState(other, ['completed', 'failed'], 5_000);
    expect(await otherDone.getState()).toBe('completed');
    expect(await first.getState()).toBe('active');

    open();
    const firstDone = await ctx.waitForState(first, ['completed', 'failed']);
    const repeatDone = await ctx.waitForState(repeat, ['completed', 'failed']);
    expect(firstDone.returnvalue).toBe('slow');
    expect(repeatDone.returnvalue).toBe('slow'); // a duplicate, answered with the recorded result
    expect(repeatDone.attemptsMade).toBeLessThanOrEqual(1);
    expect(runs.filter((r) => r.startsWith('slow'))).toEqual([`slow#${first.id}`]);
    expect(outcomes.filter((o) => o.id === data.onceonlyId).at(-1)?.status).toBe('duplicate');
  });
});
