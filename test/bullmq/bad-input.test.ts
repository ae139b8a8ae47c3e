import { addBulkStamped, addStamped, onceonly, stamp, UnrecoverableJobError } from '@onceonly/bullmq';
import { InvalidIdError, MemoryStore } from '@onceonly/core';
import { Worker, type Job } from 'bullmq';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { BullmqTestContext } from './bullmq-test-context.js';

let ctx: BullmqTestContext;
let worker: Worker | undefined;
afterEach(async () => {
  await worker?.close();
  worker = undefined;
  await ctx?.close();
});

async function run(data: unknown) {
  ctx = new BullmqTestContext(inject('redisUrl'));
  let ran = 0;
  const failures: Error[] = [];
  const wrapped = onceonly(
    async () => {
      ran++;
      return 'ran';
    },
    { store: new MemoryStore() },
  );
  worker = new Worker(ctx.name, wrapped, { connection: { url: ctx.redisUrl, maxRetriesPerRequest: null } });
  worker.on('failed', (_job, error) => failures.push(error));
  const job = await ctx.queue.add('task', data, { attempts: 5, backoff: { type: 'fixed', delay: 10 } });
  const done: Job = await ctx.waitForState(job, ['completed', 'failed'], 10_000);
  return { ran, failures, done, state: await done.getState() };
}

describe('BullMQ bad input: a clear typed failure, never a silent completion', () => {
  it.each([
    ['no stamp', { to: 'ada' }, 'ID_MISSING', /carries no "onceonlyId" stamp/],
    ['an oversized ID', { onceonlyId: 'x'.repeat(300) }, 'ID_TOO_LONG', /300 bytes .* limit is 256/],
    ['a non-string ID', { onceonlyId: 42 }, 'ID_INVALID', /must be a string/],
    ['an ID with a newline', { onceonlyId: 'a\nb' }, 'ID_INVALID', /control character/],
    ['data that is not an object', 'just text', 'ID_MISSING', /carries no "onceonlyId" stamp/],
  ])('%s → the job fails at once with %s, the handler never runs', async (_what, data, code, message) => {
    const { ran, failures, done, state } = await run(data);
    expect(state).toBe('failed');
    expect(ran).toBe(0);
    expect(done.attemptsMade).toBe(1); // unrecoverable: no retries burn through a bad ID
    expect(done.failedReason).toMatch(new RegExp(`^${code}: `));
    expect(done.failedReason).toMatch(message);
    expect(failures).toHaveLength(1);
    expect(failures[0]).toBeInstanceOf(UnrecoverableJobError);
    expect((failures[0] as UnrecoverableJobError).code).toBe(code);
    expect((failures[0] as UnrecoverableJobError).cause).toBeInstanceOf(InvalidIdError);
  });

  it.each([
    { what: 'an empty ID', id: '', code: 'ID_MISSING' },
    { what: 'an oversized ID', id: 'x'.repeat(300), code: 'ID_TOO_LONG' },
    { what: 'a non-string ID', id: 42, code: 'ID_INVALID' },
    { what: 'an ID with a newline', id: 'a\nb', code: 'ID_INVALID' },
  ] as { what: string; id: unknown; code: string }[])(
    'the producer refuses a job already carrying $what ($code): nothing reaches the queue, not even the rest of a bulk add',
    async ({ id, code }) => {
      ctx = new BullmqTestContext(inject('redisUrl'));
      const bad = { to: 'ada', onceonlyId: id };
      await expect(addStamped(ctx.queue, 'task', bad)).rejects.toMatchObject({ name: 'InvalidIdError', code });
      await expect(addBulkStamped(ctx.queue, [{ name: 'task', data: { to: 'bob' } }, { name: 'task', data: bad }])).rejects.toBeInstanceOf(InvalidIdError);
      expect(await ctx.queue.count()).toBe(0);
      expect(await ctx.queue.getJobCountByTypes('wait', 'delayed', 'active', 'completed', 'failed', 'prioritized')).toBe(0);
      // The same call with a valid ID does add (control).
      await addStamped(ctx.queue, 'task', { to: 'ada', onceonlyId: 'order-1' });
      expect(await ctx.queue.count()).toBe(1);
    },
  );

  it('a stamped job still runs (control)', async () => {
    const { ran, state, done } = await run(stamp({ to: 'ada' }));
    expect(state).toBe('completed');
    expect(ran).toBe(1);
    expect(done.returnvalue).toBe('ran');
  });
});
