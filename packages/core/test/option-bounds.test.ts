// Audit item 3: an option a store cannot honour fails at construction, never as a retriable store error
// on every call.
import { describe, expect, it } from 'vitest';
import { DedupProcessor, InvalidOptionsError, MAX_WINDOW_MS, MemoryStore, type DedupStore } from '@onceonly/core';

const scope = 'bounds';
const YEAR = 365 * 86_400_000;

describe('option bounds', () => {
  it('accepts windows up to the documented maximum (ten years), which covers a year', () => {
    expect(MAX_WINDOW_MS).toBeGreaterThanOrEqual(10 * YEAR);
    expect(() => new DedupProcessor({ scope, windowMs: YEAR })).not.toThrow();
    expect(() => new DedupProcessor({ scope, windowMs: MAX_WINDOW_MS })).not.toThrow();
  });

  it('refuses a longer window or lease with an InvalidOptionsError naming the option', () => {
    expect(() => new DedupProcessor({ scope, windowMs: 1e13 })).toThrow(InvalidOptionsError);
    expect(() => new DedupProcessor({ scope, windowMs: 1e13 })).toThrow(/"windowMs" must be at most/);
    expect(() => new DedupProcessor({ scope, windowMs: MAX_WINDOW_MS + 1 })).toThrow(/"windowMs"/);
    expect(() => new DedupProcessor({ scope, leaseMs: MAX_WINDOW_MS + 1, windowMs: MAX_WINDOW_MS })).toThrow(/"leaseMs" must be at most/);
  });

  it('refuses durations beyond what the store says it can keep', () => {
    const limited: DedupStore = new Proxy(new MemoryStore(), {
      get: (target, key) => (key === 'maxDurationMs' ? 1_000_000 : (Reflect.get(target, key) as unknown)),
    });
    expect(() => new DedupProcessor({ scope, store: limited, windowMs: 2_000_000 })).toThrow(/"windowMs" must be at most 1000000 ms: the longest duration the store can keep/);
    expect(() => new DedupProcessor({ scope, store: limited, windowMs: 1_000_000, leaseMs: 30_000 })).not.toThrow();
  });

  it('refuses timer-based options beyond what a Node timer can wait', () => {
    expect(() => new DedupProcessor({ scope, heartbeatMs: 2 ** 31, leaseMs: 2 ** 32, windowMs: 2 ** 33 })).toThrow(/"heartbeatMs" must be at most/);
    expect(() => new DedupProcessor({ scope, handlerTimeoutMs: 2 ** 31 })).toThrow(/"handlerTimeoutMs"/);
    expect(() => new DedupProcessor({ scope, inProgressRetryMs: 2 ** 31 })).toThrow(/"inProgressRetryMs"/);
  });

  it('keeps the default heartbeat within a timer\'s range for a lease of 200 days', () => {
    const p = new DedupProcessor({ scope, leaseMs: 200 * 86_400_000, windowMs: YEAR });
    expect(p.options.heartbeatMs).toBeLessThanOrEqual(2 ** 31 - 1);
    expect(p.options.heartbeatMs).toBeGreaterThan(0);
  });
});
