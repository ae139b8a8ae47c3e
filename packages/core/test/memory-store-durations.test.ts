// Audit item 2: the memory store kept times in 32-bit integers, so long windows and leases overflowed
// and stopped deduplicating. Property: for any window and lease up to the maximum, at any clock, a
// record answers as it should just before and just after each of its deadlines.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_WINDOW_MS, MemoryStore } from '@onceonly/core';

const DAY = 86_400_000;
const scope = 's';

describe('memory store with long windows and leases', () => {
  it('a completed record is a duplicate until its window ends, then new (any window up to the maximum)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 2, max: MAX_WINDOW_MS }),
        fc.integer({ min: 0, max: 400 * DAY }), // how long the process has run before
        async (windowMs, uptime) => {
          let now = 1_700_000_000_000;
          const store = new MemoryStore({ clock: () => now });
          now += uptime;
          const claim = await store.claim({ scope, id: 'm', leaseMs: 1, windowMs });
          if (claim.status !== 'acquired') return false;
          expect(await store.complete({ scope, id: 'm', token: claim.token, windowMs })).toBe('ok');
          now += windowMs - 1;
          expect((await store.claim({ scope, id: 'm', leaseMs: 1, windowMs })).status).toBe('completed');
          now += 1;
          expect((await store.claim({ scope, id: 'm', leaseMs: 1, windowMs })).status).toBe('acquired');
          return true;
        },
      ),
      { numRuns: 300, examples: [[30 * DAY, 0], [90 * DAY, 13 * DAY], [180 * DAY, 0], [25 * DAY, 12 * DAY], [365 * DAY, 0]] },
    );
  });

  it('a live lease is never taken over before it ends, and is after (any lease up to the maximum)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 10, max: MAX_WINDOW_MS - 1 }), fc.integer({ min: 0, max: 400 * DAY }), async (leaseMs, uptime) => {
        let now = 1_700_000_000_000;
        const store = new MemoryStore({ clock: () => now });
        now += uptime;
        const windowMs = leaseMs + 1;
        const first = await store.claim({ scope, id: 'm', leaseMs, windowMs });
        if (first.status !== 'acquired') return false;
        expect(first.leaseUntil).toBe(now + leaseMs);
        now += leaseMs - 1;
        expect((await store.claim({ scope, id: 'm', leaseMs, windowMs })).status).toBe('in-progress');
        now += 1;
        expect(await store.claim({ scope, id: 'm', leaseMs, windowMs })).toMatchObject({ status: 'acquired', takeover: true });
        return true;
      }),
      { numRuns: 300, examples: [[25 * DAY, 0], [30 * DAY, 5 * DAY]] },
    );
  });
});
