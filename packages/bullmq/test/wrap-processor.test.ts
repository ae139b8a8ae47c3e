import { onceonly, stamp, UnrecoverableJobError } from '@onceonly/bullmq';
import { HandlerTimeoutError, InvalidOptionsError, MemoryStore, type Outcome } from '@onceonly/core';
import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
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

  it('hands the handler the job and a context without the payload: claim fields, the job, its lock token', async () => {
    const seen: Record<string, unknown>[] = [];
    const wrapped = onceonly(async (j, context) => {
      seen.push({ ...context });
      return j.id;
    }, { store: new MemoryStore(), scope: 'ctx' });
    const given = job(stamp({ n: 1 }), { id: 'job-9' });
    expect(await wrapped(given, 'lock-1')).toBe('job-9');
    const shadow = onceonly(async (_j, context) => void seen.push({ ...context }), { store: new MemoryStore(), scope: 'ctx', shadow: true });
    await shadow(given, 'lock-2');
    await shadow(given, 'lock-3'); // a duplicate, run anyway in shadow mode
    expect(Object.keys(seen[0]!).sort()).toEqual(['id', 'job', 'lockToken', 'replayed', 'scope', 'signal', 'takeover', 'token']);
    expect(seen[0]).toMatchObject({ scope: 'ctx', job: given, lockToken: 'lock-1', replayed: false, takeover: false });
    expect(seen[0]!.token).toBeGreaterThan(0);
    expect(seen[0]!.signal).toBeInstanceOf(AbortSignal);
    expect(seen[2]).toMatchObject({ shadowOf: 'duplicate', lockToken: 'lock-3', token: 0 });
    expect('payload' in seen[2]!).toBe(false);
    await Promise.all([wrapped.close(), shadow.close()]);
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

/** A fake job that records `moveToDelayed` calls (as BullMQ's would move it to the delayed set). */
const parkable = (data: unknown, extra: Partial<Job> = {}) => {
  const delays: number[] = [];
  const fake = job(data, { moveToDelayed: async (timestamp: number) => void delays.push(timestamp), ...extra } as Partial<Job>);
  return { job: fake, delays };
};

/** A promise the test settles, and a flag that the handler reached it. */
function gate() {
  let open!: () => void;
  let reached!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  const started = new Promise<void>((resolve) => (reached = resolve));
  return { open, started, wait: () => (reached(), opened) };
}

describe('onceonly (wrapper): handlers that do not return (issue 9, item 11)', () => {
  it('a duplicate of a job this process is running is moved to delayed at once, without waiting for the first', async () => {
    const g = gate();
    const wrapped = onceonly(async () => g.wait().then(() => 'first'), { scope: 'q', inProgressRetryMs: 300, recordResults: true });
    const data = stamp({ n: 1 });
    const first = wrapped(job(data));
    await g.started;
    const repeat = parkable(data, { id: '2' });
    const before = Date.now();
    const error = await wrapped(repeat.job).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DelayedError);
    expect((error as Error).message).toMatch(/^IN_PROGRESS: /);
    expect(repeat.delays).toHaveLength(1);
    expect(repeat.delays[0]!).toBeGreaterThanOrEqual(before + 25);
    expect(repeat.delays[0]!).toBeLessThanOrEqual(Date.now() + 300);
    g.open();
    expect(await first).toBe('first');
    expect(await wrapped(job(data, { id: '3' }))).toBe('first'); // the retry of the repeat: a duplicate
    await wrapped.close();
  });

  it('with singleFlight set in the options, that behaviour is kept ("wait": the duplicate waits for the first)', async () => {
    const g = gate();
    let runs = 0;
    const wrapped = onceonly(async () => (++runs, g.wait().then(() => 'first')), { scope: 'q', singleFlight: 'wait', recordResults: true });
    const data = stamp({ n: 1 });
    const first = wrapped(job(data));
    await g.started;
    const repeat = parkable(data, { id: '2' });
    const second = wrapped(repeat.job);
    g.open();
    expect(await Promise.all([first, second])).toEqual(['first', 'first']);
    expect(repeat.delays).toEqual([]);
    expect(runs).toBe(1);
  });

  it('handlerTimeoutMs: a handler that never returns fails its job with the retriable HandlerTimeoutError, its signal aborted', async () => {
    let signal: AbortSignal | undefined;
    const wrapped = onceonly(
      async (_job, context) => {
        signal = context.signal;
        return new Promise<never>(() => {});
      },
      { scope: 'q', handlerTimeoutMs: 50 },
    );
    const error = await wrapped(job(stamp({ n: 1 }))).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HandlerTimeoutError);
    expect(error).not.toBeInstanceOf(UnrecoverableError); // BullMQ's attempts apply
    expect((error as HandlerTimeoutError).code).toBe('HANDLER_TIMEOUT');
    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toBe(error);
    await wrapped.close();
  });

  it('close() gives running handlers graceMs, then aborts them and puts their jobs back without an attempt', async () => {
    let signal: AbortSignal | undefined;
    const started = gate();
    const wrapped = onceonly(
      async (_job, context) => {
        signal = context.signal;
        void started.wait();
        return new Promise<never>(() => {}); // ignores the abort too
      },
      { scope: 'q' },
    );
    const running = parkable(stamp({ n: 1 }));
    const result = wrapped(running.job).catch((e: unknown) => e);
    await started.started;
    const t0 = Date.now();
    await wrapped.close({ graceMs: 100 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(95);
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect(signal?.aborted).toBe(true);
    expect((signal?.reason as { code?: string }).code).toBe('PROCESSOR_CLOSED');
    const error = await result;
    expect(error).toBeInstanceOf(DelayedError);
    expect((error as Error).message).toMatch(/^PROCESSOR_CLOSED: /);
    expect(running.delays).toHaveLength(1);
    expect(running.delays[0]!).toBeLessThanOrEqual(Date.now());

    // A job reaching the closed wrapper goes back unrun.
    let ran = false;
    const late = onceonly(async () => (ran = true), { scope: 'q' });
    await late.close();
    const after = parkable(stamp({ n: 2 }));
    await expect(late(after.job)).rejects.toBeInstanceOf(DelayedError);
    expect(after.delays).toHaveLength(1);
    expect(ran).toBe(false);
  });

  it('close() lets a handler that finishes within the grace period complete', async () => {
    const g = gate();
    const wrapped = onceonly(async (_job, { signal }) => g.wait().then(() => (signal.aborted ? 'aborted' : 'done')), { scope: 'q' });
    const result = wrapped(job(stamp({ n: 1 })));
    await g.started;
    const closed = wrapped.close({ graceMs: 5_000 });
    g.open(); // after close began
    await closed;
    expect(await result).toBe('done');
  });

  it('close() refuses a wrong graceMs, named', async () => {
    const wrapped = onceonly(async () => 1, { scope: 'q' });
    await expect(wrapped.close({ graceMs: -1 })).rejects.toBeInstanceOf(InvalidOptionsError);
    await expect(wrapped.close({ graceMs: 1.5 })).rejects.toThrow(/"graceMs"/);
    await wrapped.close();
  });
});
