import { describe, expect, it, vi } from 'vitest';
import {
  DedupProcessor,
  InProgressError,
  InvalidOptionsError,
  LeaseLostError,
  MemoryStore,
  PayloadConflictError,
  RecordedFailureError,
  TakeoverDeadLetterError,
  type HandlerContext,
  type Outcome,
} from '@onceonly/core';
import { gate, instrument, sleep } from './helpers.js';

const scope = 'test-scope';

describe('options', () => {
  it('fails fast naming the wrong option', () => {
    expect(() => new DedupProcessor({ scope: '' })).toThrow(/"scope" must be a non-empty string/);
    expect(() => new DedupProcessor({ scope, leaseMs: 5_000, windowMs: 1_000 })).toThrow(/"leaseMs" must be lower than windowMs/);
    expect(() => new DedupProcessor({ scope, heartbeatMs: 30_000 })).toThrow(/"heartbeatMs" must be lower than leaseMs/);
    expect(() => new DedupProcessor({ scope, onTakeover: 'reconcile' })).toThrow(/"reconcile" is required/);
    expect(() => new DedupProcessor({ scope, onConflict: 'ignore' as never })).toThrow(/"onConflict"/);
    expect(() => new DedupProcessor({ scope, store: {} as never })).toThrow(/"store" must implement the DedupStore interface/);
    expect(() => new DedupProcessor({ scope, windwMs: 5 } as never)).toThrow(/unknown option\(s\) "windwMs"/);
    expect(() => new DedupProcessor(undefined as never)).toThrow(InvalidOptionsError);
  });

  it('errors are typed with a stable code', () => {
    try {
      new DedupProcessor({ scope, leaseMs: -1 });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidOptionsError);
      expect(error).toMatchObject({ code: 'INVALID_OPTIONS', retriable: false });
    }
  });
});

describe('DedupProcessor.process', () => {
  it('runs the handler once for many deliveries and answers duplicates with the recorded result', async () => {
    const processor = new DedupProcessor({ scope, recordResults: true });
    const handler = vi.fn(async (ctx: HandlerContext) => ({ sentTo: ctx.id, token: ctx.token }));
    const outcomes: Outcome[] = [];
    for (let i = 0; i < 5; i++) outcomes.push(await processor.process({ id: 'm1', payload: { to: 'a' } }, handler));
    expect(handler).toHaveBeenCalledTimes(1);
    expect(outcomes.map((o) => o.status)).toEqual(['processed', 'duplicate', 'duplicate', 'duplicate', 'duplicate']);
    expect(outcomes[0]).toMatchObject({ replayed: false, result: { sentTo: 'm1' } });
    expect(outcomes[4]).toMatchObject({ replayed: true, result: outcomes[0]!.status === 'processed' ? outcomes[0]!.result : null });
    expect(processor.stats()).toMatchObject({ processed: 1, duplicate: 4 });
  });

  it('gives the handler the ID, payload, fencing token and a live signal', async () => {
    const processor = new DedupProcessor({ scope });
    let seen: HandlerContext<{ n: number }> | undefined;
    await processor.process({ id: 'm1', payload: { n: 1 } }, (ctx) => {
      seen = ctx;
    });
    expect(seen).toMatchObject({ scope, id: 'm1', payload: { n: 1 }, takeover: false, replayed: false });
    expect(seen!.token).toBeGreaterThan(0);
    expect(seen!.signal.aborted).toBe(false);
  });

  it('does not record results unless asked', async () => {
    const processor = new DedupProcessor({ scope });
    await processor.process({ id: 'm1' }, () => 'secret');
    const dup = await processor.process({ id: 'm1' }, () => 'other');
    expect(dup).toMatchObject({ status: 'duplicate', result: undefined });
    expect(dup.status === 'duplicate' && dup.record.result).toBeUndefined();
  });

  it('answers in-progress when another worker holds the lease, and never runs the handler', async () => {
    const store = new MemoryStore();
    const a = new DedupProcessor({ scope, store });
    const b = new DedupProcessor({ scope, store, inProgressRetryMs: 500 });
    const hold = gate();
    const first = a.process({ id: 'm1' }, () => hold.promise);
    await sleep(5);
    const handler = vi.fn();
    const second = await b.process({ id: 'm1' }, handler);
    expect(second.status).toBe('in-progress');
    expect(second.status === 'in-progress' && second.retryAfterMs).toBeLessThanOrEqual(500);
    expect(second.status === 'in-progress' && second.error).toBeInstanceOf(InProgressError);
    await expect(b.execute({ id: 'm1' }, handler)).rejects.toMatchObject({ code: 'IN_PROGRESS', retriable: true });
    expect(handler).not.toHaveBeenCalled();
    hold.open();
    expect((await first).status).toBe('processed');
    expect((await b.process({ id: 'm1' }, handler)).status).toBe('duplicate');
  });

  it('single-flight: a duplicate in the same process waits for the first and gets its result', async () => {
    const processor = new DedupProcessor({ scope, recordResults: true });
    const hold = gate();
    const handler = vi.fn(async () => {
      await hold.promise;
      return 'done';
    });
    const both = Promise.all([processor.process({ id: 'm1' }, handler), processor.process({ id: 'm1' }, handler)]);
    await sleep(5);
    hold.open();
    const [first, second] = await both;
    expect(handler).toHaveBeenCalledTimes(1);
    expect(first.status).toBe('processed');
    expect(second).toMatchObject({ status: 'duplicate', result: 'done' });
  });

  it('releases the claim on a retryable failure so a redelivery runs again', async () => {
    const processor = new DedupProcessor({ scope });
    const failing = await processor.process({ id: 'm1' }, () => {
      throw new Error('smtp timeout');
    });
    expect(failing).toMatchObject({ status: 'failed', terminal: false, remembered: false, replayed: false });
    expect(failing.status === 'failed' && failing.error.message).toBe('smtp timeout');
    expect(await processor.store.get(scope, 'm1')).toBeUndefined();
    const retried = await processor.process({ id: 'm1' }, () => 'ok');
    expect(retried).toMatchObject({ status: 'processed', result: 'ok' });
    await expect(processor.execute({ id: 'm2' }, () => Promise.reject(new TypeError('boom')))).rejects.toThrow(TypeError);
  });

  it('remembers a terminal failure when asked, and redeliveries fail without running', async () => {
    class BadInput extends Error {
      override name = 'BadInput';
    }
    const processor = new DedupProcessor({ scope, rememberFailures: true, isTerminal: (e) => e instanceof BadInput });
    const first = await processor.process({ id: 'm1' }, () => {
      throw new BadInput('no such user');
    });
    expect(first).toMatchObject({ status: 'failed', terminal: true, remembered: true, replayed: false });
    const handler = vi.fn();
    const again = await processor.process({ id: 'm1' }, handler);
    expect(handler).not.toHaveBeenCalled();
    expect(again).toMatchObject({ status: 'failed', terminal: true, replayed: true, record: { state: 'failed', error: 'BadInput' } });
    expect(again.status === 'failed' && again.error).toBeInstanceOf(RecordedFailureError);
  });

  it('does not remember terminal failures by default', async () => {
    const processor = new DedupProcessor({ scope, isTerminal: () => true });
    expect(await processor.process({ id: 'm1' }, () => Promise.reject(new Error('x')))).toMatchObject({ status: 'failed', terminal: true, remembered: false });
    expect((await processor.process({ id: 'm1' }, () => 1)).status).toBe('processed');
  });

  describe('payload conflicts', () => {
    it('rejects the same ID with a different payload by default', async () => {
      const processor = new DedupProcessor({ scope });
      await processor.process({ id: 'm1', payload: { amount: 10 } }, () => 1);
      // Key order does not matter: same canonical JSON, a plain duplicate.
      expect((await processor.process({ id: 'm1', payload: { amount: 10 } }, () => 1)).status).toBe('duplicate');
      const handler = vi.fn();
      const other = await processor.process({ id: 'm1', payload: { amount: 99 } }, handler);
      expect(other.status).toBe('conflict');
      expect(other.status === 'conflict' && other.error).toBeInstanceOf(PayloadConflictError);
      expect(handler).not.toHaveBeenCalled();
    });

    it('can treat a conflict as a duplicate or process it', async () => {
      const asDuplicate = new DedupProcessor({ scope, onConflict: 'duplicate' });
      await asDuplicate.process({ id: 'm1', payload: 'a' }, () => 1);
      expect(await asDuplicate.process({ id: 'm1', payload: 'b' }, () => 2)).toMatchObject({ status: 'duplicate', conflict: true });

      const processAnyway = new DedupProcessor({ scope, onConflict: 'process' });
      await processAnyway.process({ id: 'm1', payload: 'a' }, () => 1);
      expect(await processAnyway.process({ id: 'm1', payload: 'b' }, () => 2)).toMatchObject({ status: 'processed', conflict: true, result: 2, token: 0 });
    });

    it('fingerprinting can be turned off or customised', async () => {
      const off = new DedupProcessor({ scope, fingerprint: false });
      await off.process({ id: 'm1', payload: 'a' }, () => 1);
      expect((await off.process({ id: 'm1', payload: 'b' }, () => 1)).status).toBe('duplicate');
      const custom = new DedupProcessor({ scope, fingerprint: (p) => String((p as { v: number }).v) });
      await custom.process({ id: 'm1', payload: { v: 1, noise: 1 } }, () => 1);
      expect((await custom.process({ id: 'm1', payload: { v: 1, noise: 2 } }, () => 1)).status).toBe('duplicate');
      expect((await custom.process({ id: 'm1', payload: { v: 2 } }, () => 1)).status).toBe('conflict');
    });

    it('a payload that cannot be fingerprinted is a typed terminal failure', async () => {
      const processor = new DedupProcessor({ scope });
      const outcome = await processor.process({ id: 'm1', payload: { n: 1n } }, () => 1);
      expect(outcome).toMatchObject({ status: 'failed', terminal: true, error: { code: 'FINGERPRINT_FAILED' } });
    });
  });

  describe('bad IDs', () => {
    it.each([undefined, '', 42, 'x'.repeat(300), 'line\nbreak'])('fails %j with a typed error and runs nothing', async (id) => {
      const processor = new DedupProcessor({ scope });
      const handler = vi.fn();
      const outcome = await processor.process({ id }, handler);
      expect(outcome).toMatchObject({ status: 'failed', terminal: true, replayed: false });
      expect(outcome.status === 'failed' && outcome.error.name).toBe('InvalidIdError');
      expect(handler).not.toHaveBeenCalled();
      await expect(processor.execute({ id }, handler)).rejects.toMatchObject({ name: 'InvalidIdError', retriable: false });
    });

    it('respects maxIdBytes', async () => {
      const processor = new DedupProcessor({ scope, maxIdBytes: 8 });
      expect(await processor.process({ id: '123456789' }, () => 1)).toMatchObject({ status: 'failed', error: { code: 'ID_TOO_LONG' } });
    });
  });

  describe('store unavailable', () => {
    it('fails closed by default: throws a retriable typed error and runs nothing', async () => {
      const { store, state } = instrument();
      const processor = new DedupProcessor({ scope, store });
      state.down = true;
      const handler = vi.fn();
      const outcome = await processor.process({ id: 'm1' }, handler);
      expect(outcome).toMatchObject({ status: 'store-unavailable', handlerRan: false });
      expect(handler).not.toHaveBeenCalled();
      await expect(processor.execute({ id: 'm1' }, handler)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE', retriable: true });
      state.down = false;
      expect(await store.get(scope, 'm1')).toBeUndefined();
    });

    it('fail-open runs the handler unprotected and counts it', async () => {
      const { store, state } = instrument();
      const processor = new DedupProcessor({ scope, store, onStoreError: 'fail-open' });
      const failOpen = vi.fn();
      processor.on('fail-open', failOpen);
      state.down = true;
      const outcome = await processor.process({ id: 'm1' }, () => 'ran');
      expect(outcome).toMatchObject({ status: 'processed', failOpen: true, result: 'ran', token: 0 });
      expect(processor.stats().failOpen).toBe(1);
      expect(failOpen).toHaveBeenCalledOnce();
    });

    it('a completion that cannot be recorded is retried, then reported as store-unavailable', async () => {
      const { store, state, calls } = instrument();
      const processor = new DedupProcessor({ scope, store, completeAttempts: 2 });
      const outcome = await processor.process({ id: 'm1' }, () => {
        state.down = true;
        return 'effect applied';
      });
      expect(outcome).toMatchObject({ status: 'store-unavailable', handlerRan: true });
      expect(calls.complete).toBe(2);
    });
  });

  describe('leases', () => {
    it('the heartbeat keeps the lease alive while a long handler runs', async () => {
      const store = new MemoryStore();
      const a = new DedupProcessor({ scope, store, leaseMs: 60, windowMs: 10_000 });
      const b = new DedupProcessor({ scope, store, leaseMs: 60, windowMs: 10_000 });
      const hold = gate();
      const first = a.process({ id: 'm1' }, () => hold.promise.then(() => 'slow'));
      for (let i = 0; i < 5; i++) {
        await sleep(50);
        expect((await b.process({ id: 'm1' }, () => 'stolen')).status).toBe('in-progress');
      }
      hold.open();
      expect(await first).toMatchObject({ status: 'processed', result: 'slow' });
    });

    it('a lost lease aborts the signal and the completion is reported as lease-lost, never processed', async () => {
      let now = Date.now();
      const store = new MemoryStore({ clock: () => now });
      const a = new DedupProcessor({ scope, store, leaseMs: 1_000, heartbeatMs: 20, windowMs: 60_000 });
      const b = new DedupProcessor({ scope, store, leaseMs: 1_000, windowMs: 60_000 });
      const lost = vi.fn();
      a.on('lease-lost', lost);
      const hold = gate();
      let signal: AbortSignal | undefined;
      const first = a.process({ id: 'm1' }, async (ctx) => {
        signal = ctx.signal;
        await hold.promise;
        return 'late';
      });
      await sleep(5);
      now += 5_000; // the store's clock jumps: a's lease has expired (a paused worker)
      const taker = await b.process({ id: 'm1' }, (ctx) => ({ takeover: ctx.takeover }));
      expect(taker).toMatchObject({ status: 'processed', takeover: true, result: { takeover: true } });
      await vi.waitFor(() => expect(signal?.aborted).toBe(true));
      expect(signal!.reason).toBeInstanceOf(LeaseLostError);
      hold.open();
      const late = await first;
      expect(late.status).toBe('lease-lost');
      expect(late.status === 'lease-lost' && late.error).toBeInstanceOf(LeaseLostError);
      expect(lost).toHaveBeenCalled();
      expect(a.stats()).toMatchObject({ processed: 0, 'lease-lost': 1 });
      expect(await store.get(scope, 'm1')).toMatchObject({ state: 'completed' });
      await expect(a.execute({ id: 'm1' }, () => 1)).resolves.toBeUndefined(); // now a duplicate
    });
  });

  describe('takeover policies', () => {
    async function expiredClaim(options: Partial<ConstructorParameters<typeof DedupProcessor>[0]> = {}) {
      let now = Date.now();
      const store = new MemoryStore({ clock: () => now });
      await store.claim({ scope, id: 'm1', leaseMs: 1_000, windowMs: 60_000 }); // a worker that then died
      now += 2_000;
      const processor = new DedupProcessor({ scope, store, windowMs: 60_000, ...options });
      const takeovers = vi.fn();
      processor.on('takeover', takeovers);
      return { processor, store, takeovers };
    }

    it('retry (default) runs the handler again and says it is a takeover', async () => {
      const { processor, takeovers } = await expiredClaim();
      const outcome = await processor.process({ id: 'm1' }, (ctx) => ctx.takeover);
      expect(outcome).toMatchObject({ status: 'processed', takeover: true, result: true });
      expect(takeovers).toHaveBeenCalledWith(expect.objectContaining({ id: 'm1', policy: 'retry' }));
      expect(processor.stats().takeovers).toBe(1);
    });

    it('dead-letter fails the message for a human, and keeps failing it', async () => {
      const { processor } = await expiredClaim({ onTakeover: 'dead-letter' });
      const handler = vi.fn();
      const outcome = await processor.process({ id: 'm1' }, handler);
      expect(outcome).toMatchObject({ status: 'failed', terminal: true, remembered: true });
      expect(outcome.status === 'failed' && outcome.error).toBeInstanceOf(TakeoverDeadLetterError);
      const again = await processor.process({ id: 'm1' }, handler);
      expect(again.status === 'failed' && again.error).toBeInstanceOf(TakeoverDeadLetterError);
      expect(handler).not.toHaveBeenCalled();
    });

    it('reconcile "done" completes without running; "run" runs', async () => {
      const done = await expiredClaim({ onTakeover: 'reconcile', reconcile: () => 'done' });
      const handler = vi.fn();
      expect(await done.processor.process({ id: 'm1' }, handler)).toMatchObject({ status: 'duplicate', reconciled: true, replayed: true });
      expect(handler).not.toHaveBeenCalled();
      expect(await done.store.get(scope, 'm1')).toMatchObject({ state: 'completed' });

      const run = await expiredClaim({ onTakeover: 'reconcile', reconcile: async ({ id }) => (id === 'm1' ? 'run' : 'done') });
      expect(await run.processor.process({ id: 'm1' }, () => 'again')).toMatchObject({ status: 'processed', result: 'again', takeover: true });
    });
  });

  it('shadow mode reports duplicates but still runs the handler', async () => {
    const processor = new DedupProcessor({ scope, shadow: true });
    const shadow = vi.fn();
    processor.on('shadow', shadow);
    const handler = vi.fn((ctx: HandlerContext) => ctx.shadowOf ?? 'fresh');
    expect(await processor.process({ id: 'm1' }, handler)).toMatchObject({ status: 'processed', result: 'fresh' });
    expect(await processor.process({ id: 'm1' }, handler)).toMatchObject({ status: 'processed', shadowOf: 'duplicate', result: 'duplicate' });
    expect(handler).toHaveBeenCalledTimes(2);
    expect(shadow).toHaveBeenCalledWith({ scope, id: 'm1', wouldBe: 'duplicate' });
    expect(processor.stats().shadowed).toBe(1);
  });

  it('emits an outcome event for every outcome, and a throwing listener breaks nothing', async () => {
    const processor = new DedupProcessor({ scope });
    const seen: string[] = [];
    processor.on('outcome', (o) => seen.push(`${o.status}:${o.replayed}`));
    const off = processor.on('outcome', () => {
      throw new Error('listener bug');
    });
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    await processor.process({ id: 'm1' }, () => 1);
    await processor.process({ id: 'm1' }, () => 1);
    off();
    warn.mockRestore();
    expect(seen).toEqual(['processed:false', 'duplicate:true']);
  });

  it('scopes are independent', async () => {
    const store = new MemoryStore();
    const a = new DedupProcessor({ scope: 'a', store });
    const b = new DedupProcessor({ scope: 'b', store });
    await a.process({ id: 'm1' }, () => 1);
    expect((await b.process({ id: 'm1' }, () => 1)).status).toBe('processed');
  });
});

describe('DedupProcessor.processBatch', () => {
  const ids = (...list: string[]) => list.map((id) => ({ id, payload: { id } }));

  it('claims and completes a batch in one store call each', async () => {
    const { store, calls } = instrument();
    const processor = new DedupProcessor({ scope, store, recordResults: true });
    const batch = await processor.processBatch(ids('a', 'b', 'c', 'b'), (ctx) => ctx.id.toUpperCase());
    expect(batch.done).toBe(4);
    expect(batch.outcomes.map((o) => o.status)).toEqual(['processed', 'processed', 'processed', 'duplicate']);
    expect(batch.outcomes[3]).toMatchObject({ result: 'B', replayed: true });
    expect(calls).toEqual({ claimMany: 1, completeMany: 1 });
  });

  it('answers earlier-completed messages as duplicates without running them', async () => {
    const processor = new DedupProcessor({ scope, recordResults: true });
    await processor.process({ id: 'b', payload: { id: 'b' } }, () => 'first');
    const handler = vi.fn((ctx: HandlerContext) => ctx.id);
    const batch = await processor.processBatch(ids('a', 'b', 'c'), handler);
    expect(batch.outcomes.map((o) => o.status)).toEqual(['processed', 'duplicate', 'processed']);
    expect(batch.outcomes[1]).toMatchObject({ result: 'first' });
    expect(handler).toHaveBeenCalledTimes(2);
  });

  it('a failure at message k: done stops at k, claims after k are released, a redelivery resumes at k', async () => {
    const { store, calls } = instrument();
    const processor = new DedupProcessor({ scope, store });
    const effects: string[] = [];
    let failOn: string | undefined = 'c';
    const handler = (ctx: HandlerContext) => {
      if (ctx.id === failOn) throw new Error('downstream 503');
      effects.push(ctx.id);
    };
    const first = await processor.processBatch(ids('a', 'b', 'c', 'd', 'e'), handler);
    expect(first.done).toBe(2);
    expect(first.outcomes.map((o) => o.status)).toEqual(['processed', 'processed', 'failed']);
    expect(calls).toMatchObject({ claimMany: 1, completeMany: 1, releaseMany: 1, release: 1 });
    for (const id of ['c', 'd', 'e']) expect(await store.get(scope, id)).toBeUndefined();
    failOn = undefined;
    const redelivery = await processor.processBatch(ids('c', 'd', 'e'), handler);
    expect(redelivery.done).toBe(3);
    expect(effects).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('stops at an in-progress message and never reports past it as done', async () => {
    const store = new MemoryStore();
    const other = new DedupProcessor({ scope, store });
    const hold = gate();
    const running = other.process({ id: 'b' }, () => hold.promise);
    await sleep(5);
    const processor = new DedupProcessor({ scope, store, fingerprint: false });
    const handler = vi.fn();
    const batch = await processor.processBatch(ids('a', 'b', 'c'), handler);
    expect(batch.done).toBe(1);
    expect(batch.outcomes.map((o) => o.status)).toEqual(['processed', 'in-progress']);
    expect(handler).toHaveBeenCalledTimes(1);
    expect(await store.get(scope, 'c')).toBeUndefined(); // released
    hold.open();
    await running;
  });

  it('stops at an invalid ID, processing what came before', async () => {
    const processor = new DedupProcessor({ scope });
    const batch = await processor.processBatch([{ id: 'a' }, { id: '' }, { id: 'c' }], () => 1);
    expect(batch.done).toBe(1);
    expect(batch.outcomes.map((o) => o.status)).toEqual(['processed', 'failed']);
    expect(batch.outcomes[1]).toMatchObject({ error: { code: 'ID_MISSING' } });
    expect(await processor.store.get(scope, 'c')).toBeUndefined();
  });

  it('stops when the batch goes stale and releases the rest', async () => {
    const processor = new DedupProcessor({ scope });
    let n = 0;
    const batch = await processor.processBatch(ids('a', 'b', 'c'), () => n++, { shouldContinue: () => n < 1 });
    expect(batch.done).toBe(1);
    expect(await processor.store.get(scope, 'b')).toBeUndefined();
  });

  it('fails closed when the batch claim cannot reach the store', async () => {
    const { store, state } = instrument();
    const processor = new DedupProcessor({ scope, store });
    state.down = true;
    const handler = vi.fn();
    const batch = await processor.processBatch(ids('a', 'b'), handler);
    expect(batch).toMatchObject({ done: 0, outcomes: [{ status: 'store-unavailable' }] });
    expect(handler).not.toHaveBeenCalled();
  });

  it('reports a stale completion inside a batch as lease-lost', async () => {
    let now = Date.now();
    const store = new MemoryStore({ clock: () => now });
    const processor = new DedupProcessor({ scope, store, leaseMs: 1_000, windowMs: 60_000 });
    const other = new DedupProcessor({ scope, store, leaseMs: 1_000, windowMs: 60_000 });
    const batch = await processor.processBatch(ids('a', 'b'), async (ctx) => {
      if (ctx.id === 'a') {
        now += 5_000;
        await other.process({ id: 'a', payload: { id: 'a' } }, () => 'taken');
      }
    });
    // Outcomes stop at the first message that is not done; 'b' ran and was completed all the same.
    expect(batch.outcomes.map((o) => o.status)).toEqual(['lease-lost']);
    expect(batch.done).toBe(0);
    expect(await store.get(scope, 'b')).toMatchObject({ state: 'completed' });
  });
});

describe('MemoryStore', () => {
  it('evicts the oldest record when full, and counts early evictions', async () => {
    const evicted: string[] = [];
    const store = new MemoryStore({ capacity: 3, onEarlyEviction: (_s, id) => evicted.push(id) });
    const processor = new DedupProcessor({ scope, store });
    for (const id of ['a', 'b', 'c', 'd']) await processor.process({ id }, () => 1);
    expect(store.stats()).toMatchObject({ size: 3, evictedEarly: 1 });
    expect(evicted).toEqual(['a']);
    expect((await processor.process({ id: 'a' }, () => 1)).status).toBe('processed');
  });

  it('expires records with no timer: expired ones are swept by later writes', async () => {
    let now = Date.now();
    const store = new MemoryStore({ clock: () => now });
    const processor = new DedupProcessor({ scope, store, windowMs: 1_000, leaseMs: 100 });
    for (let i = 0; i < 100; i++) await processor.process({ id: `old-${i}` }, () => 1);
    now += 2_000;
    for (let i = 0; i < 100; i++) await processor.process({ id: `new-${i}` }, () => 1);
    expect(store.stats()).toMatchObject({ size: 100, expired: 100, evictedEarly: 0 });
  });

  it('rejects a bad capacity', () => {
    expect(() => new MemoryStore({ capacity: 0 })).toThrow(/"capacity" must be a positive integer/);
  });
});
