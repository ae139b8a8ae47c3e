// Issue 13 item 6: the memory store's compact layout (hashed keys, 48-byte records, derived expiry, a
// ring of recent claims). Behaviour the contract leaves to the store: eviction order and counting,
// sweeping, growth, token uniqueness, and the codecs and hash it is built on.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fingerprintOf, MAX_WINDOW_MS, MemoryStore } from '@onceonly/core';
import { IdKeyHasher } from '../src/store/id-key.js';
import { joinToken, packFingerprint, tokenHigh, tokenLow, unpackFingerprint } from '../src/store/record-codec.js';

const T0 = 1_700_000_000_000;

async function completeNew(store: MemoryStore, scope: string, id: string, windowMs: number, extra: { fingerprint?: string; result?: string } = {}) {
  const claim = await store.claim({ scope, id, leaseMs: 1_000, windowMs, ...(extra.fingerprint === undefined ? {} : { fingerprint: extra.fingerprint }) });
  if (claim.status !== 'acquired') throw new Error(`expected to acquire ${id}, got ${claim.status}`);
  expect(await store.complete({ scope, id, token: claim.token, windowMs, ...(extra.result === undefined ? {} : { result: extra.result }) })).toBe('ok');
  return claim.token;
}

describe('MemoryStore eviction and expiry', () => {
  it('evicts the record whose window ends first among the scopes, and counts early evictions with their IDs', async () => {
    let now = T0;
    const evicted: string[] = [];
    const store = new MemoryStore({ capacity: 4, clock: () => now, onEarlyEviction: (scope, id) => evicted.push(`${scope}/${id}`) });
    await completeNew(store, 'long', 'l1', 100_000);
    now += 1;
    await completeNew(store, 'short', 's1', 1_000);
    now += 1;
    await completeNew(store, 'short', 's2', 1_000);
    await completeNew(store, 'long', 'l2', 100_000);
    await completeNew(store, 'other', 'o1', 50_000); // full: evicts short/s1 (ends first), early
    expect(evicted).toEqual(['short/s1']);
    await completeNew(store, 'other', 'o2', 50_000); // then short/s2
    expect(evicted).toEqual(['short/s1', 'short/s2']);
    await completeNew(store, 'other', 'o3', 50_000); // 'short' is empty: other/o1 ends before long/l1
    expect(evicted).toEqual(['short/s1', 'short/s2', 'other/o1']);
    expect(store.stats()).toMatchObject({ size: 4, evictedEarly: 3, expired: 0 });
    expect(await store.get('long', 'l1')).toMatchObject({ state: 'completed' });
    expect(await store.get('other', 'o1')).toBeUndefined();
  });

  it('counts an eviction of a record whose window has ended as expired, not early', async () => {
    let now = T0;
    const evicted: string[] = [];
    const store = new MemoryStore({ capacity: 2, clock: () => now, onEarlyEviction: (_scope, id) => evicted.push(id) });
    await completeNew(store, 's', 'a', 1_000);
    await completeNew(store, 's', 'b', 60_000);
    now += 1_000; // a's window has just ended
    await completeNew(store, 's', 'c', 60_000);
    expect(store.stats()).toMatchObject({ size: 2, evictedEarly: 0, expired: 1 });
    expect(evicted).toEqual([]);
  });

  it('evicts suspect tombstones and expired leases like any record, and a later claim of the ID is new', async () => {
    let now = T0;
    const store = new MemoryStore({ capacity: 2, clock: () => now });
    const first = await store.claim({ scope: 's', id: 'x', leaseMs: 10, windowMs: 60_000 });
    now += 20;
    const takeover = await store.claim({ scope: 's', id: 'x', leaseMs: 10, windowMs: 60_000 });
    expect(takeover).toMatchObject({ status: 'acquired', takeover: true });
    expect(await store.release({ scope: 's', id: 'x', token: (takeover as { token: number }).token })).toBe('ok');
    await completeNew(store, 's', 'y', 60_000);
    await completeNew(store, 's', 'z', 60_000); // evicts the tombstone of x
    expect(store.stats()).toMatchObject({ size: 2, evictedEarly: 1 });
    const again = await store.claim({ scope: 's', id: 'x', leaseMs: 10, windowMs: 60_000 });
    expect(again).toMatchObject({ status: 'acquired', takeover: false });
    expect((again as { token: number }).token).toBeGreaterThan((first as { token: number }).token);
  });

  it('sweeps expired records as claims arrive, with no timer, and keeps every live one', async () => {
    let now = T0;
    const store = new MemoryStore({ clock: () => now });
    for (let i = 0; i < 3_000; i++) await completeNew(store, 's', `old-${i}`, 1_000);
    now += 1_000;
    for (let i = 0; i < 200; i++) await completeNew(store, 's', `new-${i}`, 1_000);
    // Every 32 claims sweep up to 64 expired records: twice what they add, so expiry keeps pace.
    const { size, expired, evictedEarly } = store.stats();
    expect(expired).toBeGreaterThanOrEqual(6 * 64);
    expect(size + expired).toBe(3_200);
    expect(evictedEarly).toBe(0);
    for (let i = 0; i < 3_000; i += 97) expect(await store.get('s', `old-${i}`)).toBeUndefined();
    for (let i = 0; i < 200; i++) expect(await store.get('s', `new-${i}`)).toMatchObject({ state: 'completed' });
    for (let i = 0; i < 3_000; i++) await completeNew(store, 's', `more-${i}`, 1_000);
    expect(store.stats()).toMatchObject({ size: 3_200, expired: 3_000 });
  });
});

describe('MemoryStore growth and records', () => {
  it('keeps every record, fingerprint, result and error exactly while growing far past its first buffer', async () => {
    let now = T0;
    const store = new MemoryStore({ capacity: 50_000, clock: () => now });
    const tokens = new Set<number>();
    const fingerprint = (i: number) => (i % 3 === 0 ? fingerprintOf({ i }) : i % 3 === 1 ? `user-${i}` : undefined);
    for (let i = 0; i < 20_000; i++) {
      const scope = `scope-${i % 3}`;
      const id = `id-${i}`;
      const claim = await store.claim({ scope, id, leaseMs: 1e9, windowMs: 60_000, ...(fingerprint(i) === undefined ? {} : { fingerprint: fingerprint(i)! }) });
      if (claim.status !== 'acquired') throw new Error('not acquired');
      tokens.add(claim.token);
      if (i % 4 === 0) await store.complete({ scope, id, token: claim.token, result: `r${i}`, windowMs: 60_000 });
      else if (i % 4 === 1) await store.fail({ scope, id, token: claim.token, error: `E${i % 7}`, windowMs: 60_000 });
      else if (i % 4 === 2) await store.complete({ scope, id, token: claim.token, windowMs: 60_000 });
      now += 1;
    }
    expect(tokens.size).toBe(20_000);
    expect(store.stats()).toMatchObject({ size: 20_000, evictedEarly: 0, expired: 0 });
    for (let i = 0; i < 20_000; i++) {
      const record = await store.get(`scope-${i % 3}`, `id-${i}`);
      const expected = {
        state: ['completed', 'failed', 'completed', 'in-progress'][i % 4],
        claimedAt: T0 + i,
        fingerprint: fingerprint(i),
        result: i % 4 === 0 ? `r${i}` : undefined,
        error: i % 4 === 1 ? `E${i % 7}` : undefined,
        leaseUntil: i % 4 === 3 ? T0 + i + 1e9 : undefined,
      };
      expect(record).toMatchObject(Object.fromEntries(Object.entries(expected).filter(([, v]) => v !== undefined)));
      for (const [key, value] of Object.entries(expected)) if (value === undefined) expect(record).not.toHaveProperty(key);
      expect(await store.get(`scope-${(i + 1) % 3}`, `id-${i}`)).toBeUndefined();
    }
  });

  it('never hands out a token twice, across evictions, releases and close', async () => {
    const store = new MemoryStore({ capacity: 3 });
    const seen: number[] = [];
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 20; i++) {
        const claim = await store.claim({ scope: 's', id: `m${i % 5}`, leaseMs: 1_000, windowMs: 60_000 });
        if (claim.status === 'acquired') {
          seen.push(claim.token);
          if (i % 2) await store.release({ scope: 's', id: `m${i % 5}`, token: claim.token });
        }
      }
      await store.close();
    }
    expect(seen.length).toBeGreaterThan(20);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    expect(new Set(seen).size).toBe(seen.length);
  });

  it("finds an owner's claim by hashing once it has left the ring of recent claims", async () => {
    const store = new MemoryStore({ capacity: 20_000 });
    const old = await store.claim({ scope: 's', id: 'slow', leaseMs: 60_000, windowMs: 60_000 });
    for (let i = 0; i < 10_000; i++) await store.claim({ scope: 's', id: `fast-${i}`, leaseMs: 60_000, windowMs: 60_000 });
    const token = (old as { token: number }).token;
    expect(await store.extend({ scope: 's', id: 'slow', token, leaseMs: 60_000 })).toBe('ok');
    expect(await store.complete({ scope: 's', id: 'other', token, windowMs: 60_000 })).toBe('lease-lost');
    expect(await store.complete({ scope: 's', id: 'slow', token, result: 'late', windowMs: 60_000 })).toBe('ok');
    expect(await store.get('s', 'slow')).toMatchObject({ state: 'completed', result: 'late', token });
  });

  it("refuses a recent token presented with another message's ID or scope", async () => {
    const store = new MemoryStore();
    const a = await store.claim({ scope: 's', id: 'a', leaseMs: 60_000, windowMs: 60_000 });
    await store.claim({ scope: 's', id: 'b', leaseMs: 60_000, windowMs: 60_000 });
    await store.claim({ scope: 't', id: 'a', leaseMs: 60_000, windowMs: 60_000 });
    const token = (a as { token: number }).token;
    expect(await store.complete({ scope: 's', id: 'b', token, windowMs: 60_000 })).toBe('lease-lost');
    expect(await store.release({ scope: 't', id: 'a', token })).toBe('lease-lost');
    expect(await store.complete({ scope: 's', id: 'a', token, windowMs: 60_000 })).toBe('ok');
  });

  it('keeps each record to its own window, beyond the 31 distinct windows it indexes', async () => {
    let now = T0;
    const store = new MemoryStore({ clock: () => now });
    for (let i = 0; i < 40; i++) await completeNew(store, 's', `w${i}`, 1_000 + i);
    for (let i = 0; i < 40; i++) {
      now = T0 + 1_000 + i - 1;
      expect((await store.claim({ scope: 's', id: `w${i}`, leaseMs: 1, windowMs: 1 })).status).toBe('completed');
    }
    for (let i = 0; i < 40; i++) {
      now = T0 + 1_000 + i;
      expect(await store.get('s', `w${i}`)).toBeUndefined();
    }
  });
});

describe('in-progress retention, derived from the claim time, the window and the lease end', () => {
  // The record keeps no expiry: in progress (or released while suspect) it is kept until the later of
  // claim + window and the lease end, as extended. The last moment it exists shows in the next claim:
  // a takeover while the record is kept, a plain new claim after.
  it('a lapsed claim is a takeover until the later of claim + window and its (extended) lease end, then new', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: MAX_WINDOW_MS }),
        fc.integer({ min: 1, max: MAX_WINDOW_MS }),
        fc.option(fc.record({ at: fc.integer({ min: 0, max: MAX_WINDOW_MS }), leaseMs: fc.integer({ min: 1, max: MAX_WINDOW_MS }) })),
        fc.boolean(),
        async (windowMs, leaseMs, extend, release) => {
          const kept = async (offset: number) => {
            let now = T0;
            const store = new MemoryStore({ clock: () => now });
            const claim = await store.claim({ scope: 's', id: 'm', leaseMs, windowMs });
            if (claim.status !== 'acquired') throw new Error('not acquired');
            let leaseUntil = T0 + leaseMs;
            if (extend) {
              now = T0 + extend.at;
              expect(await store.extend({ scope: 's', id: 'm', token: claim.token, leaseMs: extend.leaseMs })).toBe('ok');
              leaseUntil = Math.max(leaseUntil, now + extend.leaseMs);
            }
            let retention = Math.max(T0 + windowMs, leaseUntil);
            if (release && leaseUntil < retention) {
              // Take the lapsed claim over and release it: a suspect tombstone, kept for the takeover's own retention.
              now = leaseUntil;
              const takeover = await store.claim({ scope: 's', id: 'm', leaseMs, windowMs });
              expect(takeover).toMatchObject({ status: 'acquired', takeover: true });
              expect(await store.release({ scope: 's', id: 'm', token: (takeover as { token: number }).token })).toBe('ok');
              retention = Math.max(now + windowMs, now + leaseMs);
            }
            now = Math.max(now, retention + offset);
            const next = await store.claim({ scope: 's', id: 'm', leaseMs, windowMs });
            if (next.status !== 'acquired') return 'in-progress';
            return next.takeover ? 'kept' : 'gone';
          };
          const before = await kept(-1);
          // Just before the end the record is still there (unless its lease is still live at that moment).
          expect(['kept', 'in-progress']).toContain(before);
          expect(await kept(0)).toBe('gone');
        },
      ),
      { numRuns: 300, examples: [[1, MAX_WINDOW_MS, null, false], [MAX_WINDOW_MS, 1, { at: 5, leaseMs: MAX_WINDOW_MS }, true], [10, 20, { at: 30, leaseMs: 5 }, false]] },
    );
  });
});

describe('record codecs', () => {
  it('packs every 22-character base64url fingerprint losslessly, and nothing else', () => {
    const words = new Int32Array(8);
    const tails = new Uint8Array(2);
    const b64 = fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_');
    fc.assert(
      fc.property(fc.array(b64, { minLength: 22, maxLength: 22 }).map((cs) => cs.join('')), (fp) => {
        expect(packFingerprint(fp, words, 4, tails, 1)).toBe(true);
        expect(unpackFingerprint(words, 4, tails, 1)).toBe(fp);
      }),
      { numRuns: 2_000 },
    );
    for (const fp of ['A'.repeat(21), 'A'.repeat(23), `${'A'.repeat(21)}=`, `${'A'.repeat(21)}+`, `${'A'.repeat(21)}é`, `${'A'.repeat(21)}\u0141`, '']) {
      words.fill(7);
      expect(packFingerprint(fp, words, 0, tails, 0)).toBe(false);
      expect(words.every((w) => w === 7)).toBe(true);
    }
    expect(packFingerprint(fingerprintOf({ a: 1 }), words, 0, tails, 0)).toBe(true);
    expect(unpackFingerprint(words, 0, tails, 0)).toBe(fingerprintOf({ a: 1 }));
  });

  it('splits and joins every token up to 2^53 - 1', () => {
    for (const token of [1, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 40 + 12_345, Number.MAX_SAFE_INTEGER]) {
      expect(tokenHigh(token)).toBeLessThan(2 ** 21);
      expect(joinToken(tokenHigh(token) | (0b10101 << 21), tokenLow(token))).toBe(token);
    }
    fc.assert(fc.property(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), (token) => joinToken(tokenHigh(token), tokenLow(token)) === token));
  });
});

describe('IdKeyHasher', () => {
  const keyOf = (hasher: IdKeyHasher, id: string) => {
    const out = new Int32Array(4);
    hasher.key(id, out);
    return [...out].join(',');
  };

  it('gives the same keys one-shot (crypto.hash) and streamed (createHash)', () => {
    const oneShot = new IdKeyHasher({ salt: 'fixed-salt-for-test' });
    const streamed = new IdKeyHasher({ salt: 'fixed-salt-for-test', oneShot: false });
    for (const id of ['a', 'ü', '😀', 'x'.repeat(300), '\ud800', 'a\udc00b']) expect(keyOf(oneShot, id)).toBe(keyOf(streamed, id));
  });

  it('keeps strings apart that UTF-8 cannot tell apart (lone surrogates), and salts apart', () => {
    const hasher = new IdKeyHasher();
    const ids = ['\ud800', '\udbff', '\udc00', '\ufffd', '\ud800\udc00', '\u{10000}'.slice(0, 1), 'a\ud800', 'a\ufffd'];
    const keys = new Set(ids.map((id) => keyOf(hasher, id)));
    expect(keys.size).toBe(new Set(ids).size);
    expect(keyOf(new IdKeyHasher(), 'same')).not.toBe(keyOf(new IdKeyHasher(), 'same'));
  });

  it('keeps lone-surrogate IDs apart in the store', async () => {
    const store = new MemoryStore();
    for (const id of ['\ud800', '\udbff', '\ufffd']) expect((await store.claim({ scope: 's', id, leaseMs: 1_000, windowMs: 1_000 })).status).toBe('acquired');
  });
});
