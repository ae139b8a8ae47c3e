// The batch runner: bounded concurrency with per-key order, completions flushed as handlers finish,
// the contiguous done prefix, retries in place, and dead-lettering of messages that can never succeed.
import { describe, expect, it, vi } from 'vitest';
import { DEAD_LETTERED, DedupProcessor, MemoryStore, type BatchMessage, type CompleteRequest, type Outcome } from '@onceonly/core';
import { gate, instrument, sleep } from './helpers.js';

const scope = 'runner';
const messages = (n: number, key?: (i: number) => string): BatchMessage<number>[] =>
  Array.from({ length: n }, (_, i) => ({ id: `m${i}`, payload: i, ...(key ? { key: key(i) } : {}) }));

describe('concurrency and ordering', () => {
  it('runs up to `concurrency` handlers at once, and every message once', async () => {
    const p = new DedupProcessor({ scope });
    let running = 0;
    let most = 0;
    const seen: number[] = [];
    const batch = await p.processBatch(messages(40), async ({ payload }) => {
      most = Math.max(most, ++running);
      await sleep(2);
      running--;
      seen.push(payload!);
    }, { concurrency: 5, ordering: 'none' });
    expect(batch.done).toBe(40);
    expect(most).toBe(5);
    expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i));
  });

  it('"key": one message of a key at a time, in batch order; different keys in parallel', async () => {
    const p = new DedupProcessor({ scope });
    const perKey = new Map<string, number[]>();
    const runningKeys = new Set<string>();
    let overlap = 0;
    const batch = await p.processBatch(
      messages(60, (i) => `k${i % 4}`),
      async ({ payload }) => {
        const key = `k${payload! % 4}`;
        expect(runningKeys.has(key)).toBe(false);
        runningKeys.add(key);
        overlap = Math.max(overlap, runningKeys.size);
        await sleep(Math.random() * 3);
        perKey.set(key, [...(perKey.get(key) ?? []), payload!]);
        runningKeys.delete(key);
      },
      { concurrency: 10, ordering: 'key' },
    );
    expect(batch.done).toBe(60);
    expect(overlap).toBeGreaterThan(1);
    for (const [key, order] of perKey) expect(order).toEqual([...order].sort((a, b) => a - b).filter((v) => `k${v % 4}` === key));
  });

  it('concurrency 1 runs strictly in order', async () => {
    const p = new DedupProcessor({ scope });
    const seen: number[] = [];
    await p.processBatch(messages(20), async ({ payload }) => {
      await sleep(Math.random());
      seen.push(payload!);
    });
    expect(seen).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it('refuses wrong options with a typed error', async () => {
    const p = new DedupProcessor({ scope });
    await expect(p.processBatch(messages(1), () => 1, { concurrency: 0 })).rejects.toMatchObject({ code: 'INVALID_OPTIONS' });
    await expect(p.processBatch(messages(1), () => 1, { ordering: 'fifo' as never })).rejects.toThrow(/"ordering"/);
  });
});

describe('completion as you go', () => {
  it('a fast batch costs one claim and one completion round trip', async () => {
    const { store, calls } = instrument();
    const p = new DedupProcessor({ scope, store });
    expect((await p.processBatch(messages(50), () => 'ok', { flush: { maxDelayMs: 5_000 } })).done).toBe(50);
    expect(calls).toMatchObject({ claimMany: 1, completeMany: 1 });
  });

  it('completes and reports finished messages while a slow one still runs', async () => {
    const store = new MemoryStore();
    const p = new DedupProcessor({ scope, store });
    const hold = gate();
    const done: number[] = [];
    const run = p.processBatch(messages(6), async ({ payload }) => {
      if (payload === 5) await hold.promise;
    }, { onDone: (n) => done.push(n), flush: { maxDelayMs: 5 } });
    await vi.waitFor(async () => expect((await store.get(scope, 'm4'))?.state).toBe('completed'));
    expect(done.at(-1)).toBe(5); // m0..m4 are committable before m5 ends
    hold.open();
    expect((await run).done).toBe(6);
    expect(done.at(-1)).toBe(6);
  });

  it('the done prefix is contiguous: a slow first message holds back the fast ones after it', async () => {
    const p = new DedupProcessor({ scope });
    const hold = gate();
    const done: number[] = [];
    const run = p.processBatch(messages(5), async ({ payload }) => {
      if (payload === 0) await hold.promise;
    }, { concurrency: 5, ordering: 'none', onDone: (n) => done.push(n), flush: { maxDelayMs: 1 } });
    await sleep(30);
    expect(done).toEqual([]);
    hold.open();
    await run;
    expect(done.at(-1)).toBe(5);
  });

  it('claims the next chunk while the current one runs: handlers do not wait for claim round trips', async () => {
    const inner = new MemoryStore();
    let started = 0;
    const startedAtClaim: number[] = [];
    const store = new Proxy(inner, {
      get(target, property, receiver) {
        if (property === 'claimMany') {
          return async (requests: Parameters<MemoryStore['claimMany']>[0]) => {
            startedAtClaim.push(started);
            await sleep(15);
            return inner.claimMany(requests);
          };
        }
        const value = Reflect.get(target, property, receiver) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const p = new DedupProcessor({ scope, store });
    const batch = await p.processBatch(messages(100), async () => {
      started++;
      await sleep(2);
    }, { concurrency: 5, ordering: 'none', claimChunk: 20 });
    expect(batch.done).toBe(100);
    expect(startedAtClaim).toHaveLength(5);
    // Chunk k (from 20·k) is asked for before every message of chunk k − 1 has started.
    startedAtClaim.forEach((count, k) => expect(count).toBeLessThan(Math.max(1, 20 * k)));
  });

  it('a slow store holds back new handlers: ran-but-unacknowledged stays under concurrency + 2 × maxPending', async () => {
    // What a crash re-runs is every handler that ran (or runs) without an acknowledged completion.
    const inner = new MemoryStore();
    let acknowledged = 0;
    const store = new Proxy(inner, {
      get(target, property, receiver) {
        if (property === 'completeMany') {
          return async (requests: CompleteRequest[]) => {
            await sleep(20);
            const results = await inner.completeMany(requests);
            acknowledged += requests.length;
            return results;
          };
        }
        const value = Reflect.get(target, property, receiver) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const p = new DedupProcessor({ scope, store });
    let started = 0;
    let most = 0;
    const concurrency = 8;
    const maxPending = 5;
    const batch = await p.processBatch(messages(200), async () => {
      most = Math.max(most, ++started - acknowledged);
      await sleep(0);
    }, { concurrency, ordering: 'none', flush: { maxPending, maxDelayMs: 1 } });
    expect(batch.done).toBe(200);
    expect(acknowledged).toBe(200);
    expect(most).toBeLessThan(concurrency + 2 * maxPending);
    expect(most).toBeGreaterThanOrEqual(concurrency); // the bound is reached, not avoided by running slowly
  });

  it('prepares (validates and fingerprints) chunk by chunk: the first handler does not wait for the whole batch', async () => {
    let fingerprinted = 0;
    const p = new DedupProcessor({ scope, fingerprint: (payload) => `f${String(payload)}-${++fingerprinted}` });
    let atFirstRun = -1;
    const batch = await p.processBatch(messages(1_000), () => {
      if (atFirstRun < 0) atFirstRun = fingerprinted;
    }, { claimChunk: 100 });
    expect(batch.done).toBe(1_000);
    expect(atFirstRun).toBe(100); // the first chunk only
    expect(fingerprinted).toBe(1_000); // every message once
  });

  it('claims in chunks of `claimChunk`, one round trip each', async () => {
    const { store, calls } = instrument();
    const p = new DedupProcessor({ scope, store });
    expect((await p.processBatch(messages(10), () => 1, { claimChunk: 3 })).done).toBe(10);
    expect(calls.claimMany).toBe(4);
  });

  it('with concurrency, a failure stops starting new messages; those that ran are completed, the rest released', async () => {
    const store = new MemoryStore();
    const p = new DedupProcessor({ scope, store });
    const started: number[] = [];
    const batch = await p.processBatch(messages(20), async ({ payload }) => {
      started.push(payload!);
      await sleep(payload === 2 ? 5 : 1);
      if (payload === 2) throw new Error('boom');
    }, { concurrency: 4, ordering: 'none' });
    expect(batch.done).toBe(2);
    expect(batch.outcomes.at(-1)).toMatchObject({ status: 'failed', id: 'm2' });
    for (const i of started.filter((i) => i !== 2)) expect((await store.get(scope, `m${i}`))?.state).toBe('completed');
    expect(started.length).toBeLessThan(20);
    for (let i = 0; i < 20; i++) if (!started.includes(i)) expect(await store.get(scope, `m${i}`)).toBeUndefined();
  });
});

describe('retries and dead letters', () => {
  it('retries a retryable failure in place, with backoff, up to maxAttempts', async () => {
    const p = new DedupProcessor({ scope });
    let runs = 0;
    const batch = await p.processBatch(messages(1), () => {
      if (++runs < 3) throw new Error('flaky');
      return 'ok';
    }, { retry: { maxAttempts: 3, backoffMs: 1 } });
    expect(batch.outcomes).toEqual([expect.objectContaining({ status: 'processed', result: 'ok' })]);
    expect(runs).toBe(3);
  });

  it('without a dead-letter hook, retries exhausted stop the batch and a poisoned event fires', async () => {
    const p = new DedupProcessor({ scope });
    const poisoned = vi.fn();
    p.on('poisoned', poisoned);
    const batch = await p.processBatch(messages(3), ({ payload }) => {
      if (payload === 1) throw new Error('always');
    }, { retry: { maxAttempts: 2, backoffMs: 1 } });
    expect(batch.done).toBe(1);
    expect(poisoned).toHaveBeenCalledWith(expect.objectContaining({ id: 'm1', attempts: 2, deadLettered: false }));
  });

  it('hands every kind of poison to the dead-letter hook, records it, and moves on', async () => {
    const store = new MemoryStore();
    const p = new DedupProcessor({ scope, store, isTerminal: (e) => e.message === 'terminal', rememberFailures: true });
    await p.process({ id: 'remembered', payload: 0 }, () => {
      throw new Error('terminal');
    });
    const dead: { id: unknown; code: unknown; attempts: number }[] = [];
    const batch = await p.processBatch(
      [
        { id: 'ok-1', payload: 1 },
        { id: '', payload: 2 }, // bad ID
        { id: 'terminal', payload: 3 },
        { id: 'retried', payload: 4 },
        { id: 'ok-1', payload: 99 }, // same ID, other payload: a conflict
        { id: 'remembered', payload: 0 },
        { id: 'ok-2', payload: 6 },
      ],
      ({ id }) => {
        if (id === 'terminal') throw new Error('terminal');
        if (id === 'retried') throw new Error('flaky forever');
        return id;
      },
      {
        retry: { maxAttempts: 3, backoffMs: 1 },
        deadLetter: async (message, _index, poison) => {
          dead.push({ id: message.id, code: (poison.error as { code?: string }).code ?? poison.error.message, attempts: poison.attempts });
        },
      },
    );
    expect(batch.done).toBe(7);
    expect(batch.outcomes.map((o) => o.status)).toEqual(['processed', 'dead-lettered', 'dead-lettered', 'dead-lettered', 'dead-lettered', 'dead-lettered', 'processed']);
    expect(dead).toEqual([
      { id: '', code: 'ID_MISSING', attempts: 0 },
      { id: 'terminal', code: 'terminal', attempts: 1 },
      { id: 'retried', code: 'flaky forever', attempts: 3 },
      { id: 'ok-1', code: 'PAYLOAD_CONFLICT', attempts: 0 },
      { id: 'remembered', code: 'RECORDED_FAILURE', attempts: 0 },
    ]);
    expect(await store.get(scope, 'terminal')).toMatchObject({ state: 'failed', error: DEAD_LETTERED });
    expect(await store.get(scope, 'retried')).toMatchObject({ state: 'failed', error: DEAD_LETTERED });
    expect(await store.get(scope, 'ok-1')).toMatchObject({ state: 'completed' }); // the conflict did not touch it
  });

  it('a redelivery of a dead-lettered message is not handed over again', async () => {
    const p = new DedupProcessor({ scope, isTerminal: () => true });
    const hook = vi.fn(async () => undefined);
    await p.processBatch(messages(1), () => {
      throw new Error('bad');
    }, { deadLetter: hook });
    const again = await p.processBatch(messages(1), () => 'never', { deadLetter: hook });
    expect(again.outcomes).toEqual([expect.objectContaining({ status: 'dead-lettered', replayed: true })]);
    expect(hook).toHaveBeenCalledOnce();
  });

  it('a redelivery of a dead-lettered message without a record of its own (bad ID, conflicting repeat) is not handed over again (the offset mark says so)', async () => {
    // Only the high-water mark, which passes such a message once it is dead-lettered, remembers it.
    const p = new DedupProcessor({ scope, store: new MemoryStore() });
    const hook = vi.fn(async () => undefined);
    const batch: BatchMessage<number>[] = [{ id: 'good-0', payload: 0 }, { id: '', payload: 1 }, { id: 'good-0', payload: 99 }, { id: 'good-3', payload: 3 }];
    const mark = { ref: { scope, name: 'topic:0' }, positions: [10, 11, 12, 13], skip: true };
    const first = await p.processBatch(batch, () => 'ok', { deadLetter: hook, mark });
    expect(first.outcomes.map((o) => o.status)).toEqual(['processed', 'dead-lettered', 'dead-lettered', 'processed']);
    const again = await p.processBatch(batch, () => 'never', { deadLetter: hook, mark });
    expect(again.done).toBe(4);
    expect(again.outcomes[1]).toMatchObject({ status: 'dead-lettered', replayed: true, error: { code: 'ID_MISSING' } });
    expect(again.outcomes[2]).toMatchObject({ status: 'duplicate', belowMark: true });
    expect(hook).toHaveBeenCalledTimes(2);
    // A chunk of bad messages only reads the mark on its own; outside the mark they are handed over as usual.
    const alone = await p.processBatch([{ id: '', payload: 1 }, { id: '', payload: 3 }], () => 'never', {
      deadLetter: hook,
      mark: { ...mark, positions: [11, 14] },
      claimChunk: 1,
    });
    expect(alone.outcomes.map((o) => [o.status, o.replayed])).toEqual([['dead-lettered', true], ['dead-lettered', false]]);
    expect(hook).toHaveBeenCalledTimes(3);
  });

  it('a dead-letter hook that fails stops the batch at that message (nothing lost)', async () => {
    const p = new DedupProcessor({ scope, isTerminal: () => true });
    const batch = await p.processBatch(messages(3), ({ payload }) => {
      if (payload === 1) throw new Error('bad');
    }, {
      deadLetter: async () => {
        throw new Error('dead-letter topic unreachable');
      },
    });
    expect(batch.done).toBe(1);
    expect(batch.outcomes.at(-1)).toMatchObject({ status: 'failed', terminal: false });
  });

  it('a concurrent batch dead-letters without stopping the other keys', async () => {
    const p = new DedupProcessor({ scope, isTerminal: () => true });
    const outcomes: Outcome[] = [];
    p.on('outcome', (o) => outcomes.push(o));
    const batch = await p.processBatch(messages(30, (i) => `k${i % 3}`), async ({ payload }) => {
      await sleep(1);
      if (payload === 7) throw new Error('poison');
    }, { concurrency: 6, deadLetter: async () => undefined });
    expect(batch.done).toBe(30);
    expect(outcomes.filter((o) => o.status === 'dead-lettered').map((o) => o.id)).toEqual(['m7']);
  });
});
