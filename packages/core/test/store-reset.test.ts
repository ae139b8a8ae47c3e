// The processor's side of store resets (a store that forgot a scope): the `store-reset` event, the
// `storeResets` counter and `onStoreReset`, with a memory store that reports a reset on demand.
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  DedupProcessor,
  MemoryStore,
  reportsResets,
  supportsMarks,
  type ClaimRequest,
  type ClaimResult,
  type ResetReportingStore,
  type StoreResetEvent,
} from '../src/index.js';

/** A memory store that reports a reset of `scope` during its next claim call. */
class ForgetfulStore extends MemoryStore implements ResetReportingStore {
  readonly #listeners = new Set<(event: StoreResetEvent) => void>();
  #pending: string | undefined;

  onReset(listener: (event: StoreResetEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  forget(scope: string): void {
    this.#pending = scope;
  }

  override async claim(request: ClaimRequest): Promise<ClaimResult> {
    const result = await super.claim(request);
    this.#report();
    return result;
  }

  override async claimMany(requests: readonly ClaimRequest[]): Promise<ClaimResult[]> {
    const results = await super.claimMany(requests);
    this.#report();
    return results;
  }

  #report(): void {
    const scope = this.#pending;
    if (scope === undefined) return;
    this.#pending = undefined;
    for (const listener of this.#listeners) listener({ scope, reason: 'missing', previousEpoch: 'e1', epoch: 'e2' });
  }
}

afterEach(() => {
  vi.useRealTimers();
});

describe('store resets', () => {
  it('reportsResets recognises the capability', () => {
    expect(reportsResets(new ForgetfulStore())).toBe(true);
    expect(reportsResets(new MemoryStore())).toBe(false);
  });

  it('are counted and emitted for the processor\'s own scope only; by default processing goes on', async () => {
    const store = new ForgetfulStore();
    const processor = new DedupProcessor({ scope: 'mine', store });
    const events: unknown[] = [];
    processor.on('store-reset', (event) => events.push(event));
    store.forget('other');
    expect((await processor.process({ id: 'a' }, () => 1)).status).toBe('processed');
    expect(events).toEqual([]);
    store.forget('mine');
    expect((await processor.process({ id: 'b' }, () => 1)).status).toBe('processed');
    expect(events).toEqual([{ scope: 'mine', reason: 'missing', previousEpoch: 'e1', epoch: 'e2' }]);
    expect(processor.stats().storeResets).toBe(1);
    await processor.close();
    // A closed processor no longer listens.
    store.forget('mine');
    await store.claim({ scope: 'mine', id: 'c', leaseMs: 1000, windowMs: 60_000 });
    expect(events).toHaveLength(1);
  });

  it('with failClosedMs, make claims store-unavailable until it passes, giving back the claim that noticed', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const store = new ForgetfulStore();
    const processor = new DedupProcessor({ scope: 's', store, onStoreReset: { failClosedMs: 5_000 } });
    const events: { failClosedUntil?: number }[] = [];
    processor.on('store-reset', (event) => events.push(event));
    let runs = 0;
    store.forget('s');
    const noticed = await processor.process({ id: 'a' }, () => ++runs);
    expect(noticed.status).toBe('store-unavailable');
    expect(events[0]!.failClosedUntil).toBe(Date.now() + 5_000);
    expect(await store.get('s', 'a')).toBeUndefined(); // released
    vi.setSystemTime(Date.now() + 4_000);
    expect((await processor.process({ id: 'a' }, () => ++runs)).status).toBe('store-unavailable');
    const batch = await processor.processBatch([{ id: 'b' }], () => ++runs);
    expect(batch.outcomes[0]!.status).toBe('store-unavailable');
    expect(runs).toBe(0);
    vi.setSystemTime(Date.now() + 1_001);
    expect((await processor.process({ id: 'a' }, () => ++runs)).status).toBe('processed');
    expect((await processor.processBatch([{ id: 'b' }], () => ++runs)).done).toBe(1);
    expect(runs).toBe(2);
    await processor.close();
  });

  it('leave a store without the capability, and its marks, as they are', () => {
    const store = new MemoryStore();
    const processor = new DedupProcessor({ scope: 's', store, onStoreReset: { failClosedMs: 1_000 } });
    expect(processor.store).toBe(store);
    expect(supportsMarks(store)).toBe(supportsMarks(processor.store));
  });

  it('reject a bad policy at construction', () => {
    expect(() => new DedupProcessor({ scope: 's', onStoreReset: { failClosedMs: 0 } })).toThrow(/onStoreReset/);
    expect(() => new DedupProcessor({ scope: 's', onStoreReset: 'stop' as never })).toThrow(/onStoreReset/);
  });
});
