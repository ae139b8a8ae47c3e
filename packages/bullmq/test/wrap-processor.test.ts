import { onceonly, stamp, UnrecoverableJobError } from '@onceonly/bullmq';
import { MemoryStore, type Outcome } from '@onceonly/core';
import { UnrecoverableError, type Job } from 'bullmq';
import { describe, expect, it } from 'vitest';

/** Just enough of a BullMQ job for the wrapper (the integration tests use real ones). */
const job = (data: unknown, extra: Partial<Job> = {}) => ({ id: '1', name: 'task', queueName: 'q', data, attemptsMade: 0, ...extra }) as unknown as Job;

describe('onceonly (wrapper)', () => {
  it('reads the ID from BullMQ job id or a function of the job, as configured', async () => {
    const store = new MemoryStore();
    let runs = 0;
    const byJobId = onceonly(async () => ++runs, { store, id: 'jobId' });
    expect(await byJobId(job({}, { id: 'order-1' }))).toBe(1);
    expect(await byJobId(job({}, { id: 'order-1' }))).toBeUndefined(); // duplicate, results not recorded
    const byKey = onceonly(async () => ++runs, { store, scope: 'other', id: (j) => `order-${(j.data as { n: number }).n}`, recordResults: true });
    expect(await byKey(job({ n: 7 }))).toBe(2);
    expect(await byKey(job({ n: 7 }, { id: '2' }))).toBe(2);
    expect(runs).toBe(2);
  });

  it('scopes by queue name unless told otherwise', async () => {
    const store = new MemoryStore();
    const outcomes: Outcome[] = [];
    const wrapped = onceonly(async () => 'ok', { store });
    const data = stamp({ n: 1 });
    await wrapped(job(data, { queueName: 'a' } as Partial<Job>));
    await wrapped(job(data, { queueName: 'b' } as Partial<Job>));
    for (const p of wrapped.processors()) p.on('outcome', (o) => outcomes.push(o));
    await wrapped(job(data, { queueName: 'a' } as Partial<Job>));
    expect(wrapped.processors().map((p) => p.scope)).toEqual(['a', 'b']);
    expect(outcomes.map((o) => o.status)).toEqual(['duplicate']);
    await wrapped.close();
  });

  it('UnrecoverableError is terminal; with rememberFailures a redelivery fails at once without running', async () => {
    let runs = 0;
    const wrapped = onceonly(
      async () => {
        runs++;
        throw new UnrecoverableError('card declined');
      },
      { scope: 'q', rememberFailures: true },
    );
    const data = stamp({ n: 1 });
    await expect(wrapped(job(data))).rejects.toThrow(UnrecoverableError);
    const again = await wrapped(job(data)).catch((error: unknown) => error);
    expect(again).toBeInstanceOf(UnrecoverableJobError);
    expect((again as UnrecoverableJobError).code).toBe('RECORDED_FAILURE');
    expect(runs).toBe(1);
  });

  it('a retryable failure releases the claim, so the retry runs', async () => {
    let runs = 0;
    const wrapped = onceonly(
      async () => {
        if (++runs === 1) throw new Error('flaky');
        return 'ok';
      },
      { scope: 'q' },
    );
    const data = stamp({ n: 1 });
    await expect(wrapped(job(data))).rejects.toThrow('flaky');
    expect(await wrapped(job(data))).toBe('ok');
    expect(runs).toBe(2);
  });

  it('a payload conflict fails at once with its code', async () => {
    const wrapped = onceonly(async () => 'ok', { scope: 'q' });
    await wrapped(job({ onceonlyId: 'same', amount: 1 }));
    const error = await wrapped(job({ onceonlyId: 'same', amount: 2 })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnrecoverableJobError);
    expect((error as Error).message).toMatch(/^PAYLOAD_CONFLICT: /);
  });
});
