import { coalesceStore, DedupProcessor, MemoryStore, StoreUnavailableError, type DedupStore } from '@onceonly/core';
import { describe, expect, it } from 'vitest';

function spy(store: DedupStore) {
  const calls: string[] = [];
  const proxy = new Proxy(store, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.push(`${String(prop)}${Array.isArray(args[0]) ? `×${args[0].length}` : ''}`);
        return value.apply(target, args);
      };
    },
  });
  return { store: proxy, calls };
}

const claim = (id: string) => ({ scope: 's', id, leaseMs: 1_000, windowMs: 60_000 });

describe('coalesceStore', () => {
  it('sends a lone call at once, and calls made while it is in flight as one batch', async () => {
    const { store, calls } = spy(new MemoryStore());
    const coalesced = coalesceStore(store);
    const answers = await Promise.all(['a', 'b', 'c', 'a'].map((id) => coalesced.claim(claim(id))));
    expect(calls).toEqual(['claim', 'claimMany×3']);
    expect(answers.map((a) => a.status)).toEqual(['acquired', 'acquired', 'acquired', 'in-progress']);

    const done = await Promise.all(answers.slice(0, 3).map((a, i) => coalesced.complete({ scope: 's', id: 'abc'[i]!, token: (a as { token: number }).token, windowMs: 60_000 })));
    expect(done).toEqual(['ok', 'ok', 'ok']);
    expect(calls.slice(2)).toEqual(['complete', 'completeMany×2']);
    expect((await coalesced.get('s', 'b'))?.state).toBe('completed');
  });

  it('rejects every caller of a failed batch, and keeps working afterwards', async () => {
    const memory = new MemoryStore();
    let failing = true;
    const flaky: DedupStore = Object.assign(Object.create(memory) as DedupStore, {
      claim: (r: Parameters<DedupStore['claim']>[0]) => (failing ? Promise.reject(new StoreUnavailableError('down')) : memory.claim(r)),
      claimMany: (r: Parameters<DedupStore['claimMany']>[0]) => (failing ? Promise.reject(new StoreUnavailableError('down')) : memory.claimMany(r)),
    });
    const coalesced = coalesceStore(flaky);
    const settled = await Promise.allSettled(['a', 'b', 'c'].map((id) => coalesced.claim(claim(id))));
    expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected', 'rejected']);
    failing = false;
    expect((await coalesced.claim(claim('a'))).status).toBe('acquired');
  });
});

describe('the processor coalesces concurrent callers', () => {
  it('50 concurrent process() calls on fresh IDs share claim and completion round trips', async () => {
    const { store, calls } = spy(new MemoryStore());
    const processor = new DedupProcessor({ scope: 's', store });
    const outcomes = await Promise.all(Array.from({ length: 50 }, (_, i) => processor.process({ id: `m${i}` }, async () => i)));
    expect(outcomes.every((o) => o.status === 'processed')).toBe(true);
    const trips = calls.filter((c) => c.startsWith('claim') || c.startsWith('complete'));
    expect(trips.length).toBeLessThanOrEqual(6); // a lone call at once, then batches of what arrived meanwhile, each way
    expect(trips).toContain('claimMany×49');
  });

  it('coalesce: false sends one call per caller', async () => {
    const { store, calls } = spy(new MemoryStore());
    const processor = new DedupProcessor({ scope: 's', store, coalesce: false });
    await Promise.all(Array.from({ length: 5 }, (_, i) => processor.process({ id: `m${i}` }, () => i)));
    expect(calls.filter((c) => c === 'claim')).toHaveLength(5);
    expect(calls.filter((c) => c === 'complete')).toHaveLength(5);
  });
});
