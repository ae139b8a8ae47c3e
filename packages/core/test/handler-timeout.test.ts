// Audit item 11 (core side): a handler that never resolves must not hang the processor: a timeout or
// close() aborts it, gives up on it if it ignores the abort, and leaves its claim to expire (a takeover
// next). An in-process duplicate can be answered in-progress at once instead of waiting.
import { describe, expect, it, vi } from 'vitest';
import { DedupProcessor, HandlerTimeoutError, MemoryStore, ProcessorClosedError } from '@onceonly/core';
import { gate } from './helpers.js';

const scope = 'timeouts';
const never = () => new Promise<never>(() => undefined);

describe('handlerTimeoutMs', () => {
  it('aborts a handler that runs too long; one that honours the abort releases its claim', async () => {
    const store = new MemoryStore();
    const p = new DedupProcessor({ scope, store, handlerTimeoutMs: 30 });
    let reason: unknown;
    const outcome = await p.process({ id: 'm1' }, ({ signal }) =>
      new Promise((_, reject) => signal.addEventListener('abort', () => reject((reason = signal.reason)))),
    );
    expect(reason).toBeInstanceOf(HandlerTimeoutError);
    expect(outcome).toMatchObject({ status: 'failed', terminal: false });
    expect(outcome).not.toHaveProperty('abandoned');
    expect(outcome.status === 'failed' && outcome.error).toMatchObject({ code: 'HANDLER_TIMEOUT', retriable: true, timeoutMs: 30 });
    expect(await store.get(scope, 'm1')).toBeUndefined(); // released
  });

  it('gives up on a handler that ignores the abort: failed, abandoned, and the claim left to expire as a takeover', async () => {
    let now = Date.now();
    const store = new MemoryStore({ clock: () => now });
    const p = new DedupProcessor({ scope, store, handlerTimeoutMs: 20, leaseMs: 1_000, windowMs: 60_000, onTakeover: 'dead-letter' });
    const outcome = await p.process({ id: 'm1' }, never);
    expect(outcome).toMatchObject({ status: 'failed', terminal: false, abandoned: true });
    expect(p.stats().abandoned).toBe(1);
    // It may still apply its effect: the record stays in progress, then the next claim is a takeover.
    expect(await store.get(scope, 'm1')).toMatchObject({ state: 'in-progress' });
    now += 2_000;
    const next = await p.process({ id: 'm1' }, () => 'ran');
    expect(next.status === 'failed' && next.error.name).toBe('TakeoverDeadLetterError');
  });

  it('a timed-out handler in a batch stops the batch there; its signal fires, the batch\'s others do not', async () => {
    const p = new DedupProcessor({ scope, handlerTimeoutMs: 20 });
    const signals: AbortSignal[] = [];
    const batch = await p.processBatch([{ id: 'a' }, { id: 'b' }, { id: 'c' }], ({ id, signal }) => {
      signals.push(signal);
      return id === 'b' ? never() : id;
    });
    expect(batch.outcomes.map((o) => o.status)).toEqual(['processed', 'failed']);
    expect(batch.done).toBe(1);
    expect(signals[0]!.aborted).toBe(false);
    expect(signals[1]!.aborted).toBe(true);
  });
});

describe('close()', () => {
  it('aborts running handlers after the grace period, and the pending process() resolves', async () => {
    const p = new DedupProcessor({ scope });
    const started = gate();
    let signal: AbortSignal | undefined;
    const pending = p.process({ id: 'm1' }, (ctx) => {
      signal = ctx.signal;
      started.open();
      return never();
    });
    await started.promise;
    const closing = Date.now();
    await p.close({ graceMs: 50 });
    expect(Date.now() - closing).toBeGreaterThanOrEqual(45);
    expect(signal!.reason).toBeInstanceOf(ProcessorClosedError);
    expect(await pending).toMatchObject({ status: 'failed', abandoned: true });
  });

  it('lets a handler that finishes within the grace period complete', async () => {
    const store = new MemoryStore();
    const p = new DedupProcessor({ scope, store });
    const pending = p.process({ id: 'm1' }, () => new Promise((resolve) => setTimeout(() => resolve('done'), 20)));
    await p.close({ graceMs: 2_000 });
    expect(await pending).toMatchObject({ status: 'processed', result: 'done' });
    expect(await store.get(scope, 'm1')).toMatchObject({ state: 'completed' });
  });

  it('refuses new deliveries with a retriable ProcessorClosedError, running nothing', async () => {
    const p = new DedupProcessor({ scope });
    await p.close();
    const handler = vi.fn();
    const outcome = await p.process({ id: 'm1' }, handler);
    expect(outcome.status === 'failed' && outcome.error).toBeInstanceOf(ProcessorClosedError);
    expect(outcome).toMatchObject({ terminal: false });
    expect((await p.processBatch([{ id: 'a' }], handler)).done).toBe(0);
    expect(handler).not.toHaveBeenCalled();
  });
});

describe('single-flight', () => {
  it('"in-progress" answers a second delivery of a running ID at once, without waiting', async () => {
    const p = new DedupProcessor({ scope, inProgressRetryMs: 300 });
    const hold = gate<string>();
    const first = p.process({ id: 'm1' }, () => hold.promise);
    await new Promise((resolve) => setTimeout(resolve, 5));
    const second = await p.process({ id: 'm1' }, () => 'second', { singleFlight: 'in-progress' });
    expect(second).toMatchObject({ status: 'in-progress', retryAfterMs: 300, record: { state: 'in-progress' } });
    expect(second.status === 'in-progress' && second.record.token).toBeGreaterThan(0);
    hold.open('first');
    expect(await first).toMatchObject({ status: 'processed', result: 'first' });
  });

  it('"wait" (the default) waits for the first and answers duplicate', async () => {
    const p = new DedupProcessor({ scope });
    const hold = gate<string>();
    const first = p.process({ id: 'm1' }, () => hold.promise);
    const second = p.process({ id: 'm1' }, () => 'second');
    hold.open('first');
    await first;
    expect((await second).status).toBe('duplicate');
  });

  it('the processor option accepts true, false, "wait" and "in-progress"', () => {
    expect(new DedupProcessor({ scope, singleFlight: true }).options.singleFlight).toBe('wait');
    expect(new DedupProcessor({ scope, singleFlight: false }).options.singleFlight).toBe(false);
    expect(new DedupProcessor({ scope, singleFlight: 'in-progress' }).options.singleFlight).toBe('in-progress');
    expect(() => new DedupProcessor({ scope, singleFlight: 'queue' as never })).toThrow(/"singleFlight"/);
  });
});
