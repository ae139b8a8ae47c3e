// Audit item 6: a user callback that throws (or answers nonsense) gives a typed failed outcome and never
// leaves a claim dangling until its lease ends.
import { describe, expect, it, vi } from 'vitest';
import { CallbackError, DedupProcessor, FingerprintError, MemoryStore, ResultSerializationError } from '@onceonly/core';

const scope = 'callbacks';

describe('user callbacks', () => {
  it('isTerminal that throws: process() resolves failed (retriable CallbackError) and the claim is released at once', async () => {
    const store = new MemoryStore();
    const p = new DedupProcessor({
      scope,
      store,
      isTerminal: () => {
        throw new Error('isTerminal bug');
      },
    });
    const outcome = await p.process({ id: 'm1' }, () => {
      throw new Error('handler failed');
    });
    expect(outcome).toMatchObject({ status: 'failed', terminal: false, remembered: false });
    const error = outcome.status === 'failed' ? outcome.error : undefined;
    expect(error).toBeInstanceOf(CallbackError);
    expect(error).toMatchObject({ code: 'CALLBACK_FAILED', callback: 'isTerminal', retriable: true });
    expect(error?.message).toContain('handler failed');
    // Released, not in progress until the lease ends: the next delivery runs now.
    expect(await store.get(scope, 'm1')).toBeUndefined();
    expect((await p.process({ id: 'm1' }, () => 'ok')).status).toBe('processed');
  });

  it('isTerminal that throws in a batch: the batch stops with a failed outcome and releases its claims', async () => {
    const store = new MemoryStore();
    const p = new DedupProcessor({ scope, store, isTerminal: () => { throw new Error('bug'); } });
    const batch = await p.processBatch([{ id: 'a' }, { id: 'b' }], (ctx) => {
      if (ctx.id === 'a') throw new Error('x');
    });
    expect(batch.done).toBe(0);
    expect(batch.outcomes[0]!.status === 'failed' && batch.outcomes[0]!.error).toBeInstanceOf(CallbackError);
    expect(await store.get(scope, 'a')).toBeUndefined();
    expect(await store.get(scope, 'b')).toBeUndefined();
  });

  it('a reconcile that throws or answers something else: retriable CallbackError, the claim released (and still suspect)', async () => {
    let now = Date.now();
    const store = new MemoryStore({ clock: () => now });
    await store.claim({ scope, id: 'm1', leaseMs: 1_000, windowMs: 60_000 });
    now += 2_000;
    const answers: unknown[] = [new Error('downstream unreachable'), 'skip', 'done'];
    const reconcile = vi.fn(() => {
      const answer = answers.shift();
      if (answer instanceof Error) throw answer;
      return answer as 'done';
    });
    const p = new DedupProcessor({ scope, store, windowMs: 60_000, leaseMs: 1_000, onTakeover: 'reconcile', reconcile });
    const handler = vi.fn();
    const thrown = await p.process({ id: 'm1' }, handler);
    expect(thrown.status === 'failed' && thrown.error).toMatchObject({ code: 'CALLBACK_FAILED', callback: 'reconcile', retriable: true });
    const nonsense = await p.process({ id: 'm1' }, handler);
    expect(nonsense.status === 'failed' && nonsense.error.message).toMatch(/must answer "done" or "run", got "skip"/);
    expect(await p.process({ id: 'm1' }, handler)).toMatchObject({ status: 'duplicate', reconciled: true });
    expect(handler).not.toHaveBeenCalled();
    expect(reconcile).toHaveBeenCalledTimes(3);
  });

  it('a fingerprint function that throws or answers a non-string: FingerprintError, nothing claimed', async () => {
    const store = new MemoryStore();
    for (const fingerprint of [() => { throw new Error('boom'); }, () => 42 as never, () => '' , () => 'x'.repeat(513)]) {
      const p = new DedupProcessor({ scope, store, fingerprint });
      const outcome = await p.process({ id: 'm1', payload: { a: 1 } }, () => 'ran');
      expect(outcome).toMatchObject({ status: 'failed', terminal: true });
      expect(outcome.status === 'failed' && outcome.error).toBeInstanceOf(FingerprintError);
    }
    expect(await store.get(scope, 'm1')).toBeUndefined();
  });

  it('a result the serializer cannot serialise: completed without it, reported as a typed result-error event', async () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const p = new DedupProcessor({ scope, recordResults: true });
    const events = vi.fn();
    p.on('result-error', events);
    const warnings = vi.fn();
    process.on('warning', warnings);
    try {
      const outcome = await p.process({ id: 'm1' }, () => cyclic);
      expect(outcome.status).toBe('processed');
      expect(events).toHaveBeenCalledOnce();
      expect(events.mock.calls[0]![0]).toMatchObject({ scope, id: 'm1', operation: 'serialize' });
      expect(events.mock.calls[0]![0].error).toBeInstanceOf(ResultSerializationError);
      expect(p.stats().resultErrors).toBe(1);
      // Completed (the effect happened): a redelivery is a duplicate, not a second run.
      expect((await p.process({ id: 'm1' }, () => 'again')).status).toBe('duplicate');
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings).not.toHaveBeenCalled();
    } finally {
      process.off('warning', warnings);
    }
  });

  it('a serializer that answers a non-string, or a deserializer that throws, is reported the same way', async () => {
    const p = new DedupProcessor({
      scope,
      recordResults: true,
      serializer: { serialize: (value) => (value === 'bad' ? (undefined as never) : String(value)), deserialize: () => { throw new Error('corrupt'); } },
    });
    const events = vi.fn();
    p.on('result-error', events);
    await p.process({ id: 'bad' }, () => 'bad');
    await p.process({ id: 'good' }, () => 'good');
    expect((await p.process({ id: 'good' }, () => 'x'))).toMatchObject({ status: 'duplicate', result: undefined });
    expect(events.mock.calls.map((c) => [c[0].id, c[0].operation])).toEqual([['bad', 'serialize'], ['good', 'deserialize']]);
  });
});
