// Issue 13 item 6: the memory store was rebuilt (hashed keys, one typed-array record per slot, derived
// expiry). Property: for any sequence of operations, it answers exactly as the previous Map-based store
// did (kept in reference-memory-store.ts): every claim, transition, read, token, record field, eviction
// callback and counter, at any capacity, with several scopes, windows, fingerprints and results.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fingerprintOf, MAX_WINDOW_MS, MemoryStore, type ClaimRequest, type MarkRef } from '@onceonly/core';
import { ReferenceMemoryStore } from './reference-memory-store.js';

const SCOPES = ['s1', 's2', 'ü'];
// Look-alikes, lone surrogates (no UTF-8 form: '\ud800' and '\udbff' would both encode as U+FFFD) and U+FFFD itself.
const IDS = ['a', 'b', 'c', 'd', 'e', 'a:b', 'ü', 'u\u0308', '\ud800', '\udbff', '\ufffd', 'x'.repeat(300)];
const FINGERPRINTS = [undefined, fingerprintOf({ n: 1 }), fingerprintOf({ n: 2 }), 'user-fp', 'A'.repeat(21) + '!', '_'.repeat(22), '-'.repeat(23)];
const WINDOWS = [1, 7, 100, 1_000, 60_000, 0.5, MAX_WINDOW_MS];
const LEASES = [1, 10, 500, 5_000, MAX_WINDOW_MS];

// Mostly a few keys, so that sequences revisit them (takeovers, suspect releases, expiry, re-claims).
const scopeArb = fc.oneof({ weight: 4, arbitrary: fc.constant('s1') }, { weight: 1, arbitrary: fc.constantFrom(...SCOPES) });
const idArb = fc.oneof({ weight: 4, arbitrary: fc.constantFrom('a', 'b') }, { weight: 1, arbitrary: fc.constantFrom(...IDS) });
const req = fc.record({
  scope: scopeArb,
  id: idArb,
  fingerprint: fc.constantFrom(...FINGERPRINTS),
  leaseMs: fc.constantFrom(...LEASES),
  windowMs: fc.oneof(fc.constantFrom(...WINDOWS), fc.integer({ min: 1, max: 100_000 })),
});
// An owner's reference: one of the recent acquired claims (most recent first), as it was, or with the ID
// of another message (a token is only good for its own ID), or a token never handed out.
const ref = fc.record({
  pick: fc.nat({ max: 5 }),
  variant: fc.constantFrom('own', 'own', 'own', 'own', 'other-id', 'bogus'),
  id: idArb,
});
const op = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('claim' as const), request: req }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('claimMany' as const), requests: fc.array(req, { maxLength: 5 }) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('complete' as const), ref, result: fc.constantFrom(undefined, 'r1', ''), windowMs: fc.constantFrom(...WINDOWS) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('completeMany' as const), refs: fc.array(ref, { maxLength: 4 }), windowMs: fc.constantFrom(...WINDOWS) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('fail' as const), ref, error: fc.constantFrom('E', 'TAKEOVER_DEAD_LETTER'), windowMs: fc.constantFrom(...WINDOWS) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('release' as const), ref }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('releaseMany' as const), refs: fc.array(ref, { maxLength: 4 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('extend' as const), ref, leaseMs: fc.constantFrom(...LEASES) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('get' as const), scope: scopeArb, id: idArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('marked' as const), request: req, position: fc.nat({ max: 5 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.constantFrom(0, 1, 9, 99, 600, 6_000, 70_000) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('close' as const) }) },
);
type Op = typeof op extends fc.Arbitrary<infer T> ? T : never;

async function runBoth(capacity: number, ops: Op[]): Promise<void> {
  let now = 1_700_000_000_000;
  const clock = () => now;
  const evictedRef: string[] = [];
  const evictedNew: string[] = [];
  const reference = new ReferenceMemoryStore({ capacity, clock, onEarlyEviction: (scope, id) => evictedRef.push(`${scope}/${id}`) });
  const store = new MemoryStore({ capacity, clock, onEarlyEviction: (scope, id) => evictedNew.push(`${scope}/${id}`) });
  const claims: { scope: string; id: string; token: number }[] = [];
  const owned = (r: { pick: number; variant: string; id: string }) => {
    const claim = claims[claims.length - 1 - (r.pick % Math.max(claims.length, 1))] ?? { scope: 's1', id: r.id, token: 1e9 };
    if (r.variant === 'other-id') return { ...claim, id: r.id };
    return r.variant === 'bogus' ? { ...claim, token: 1e9 } : claim;
  };
  const remember = (requests: readonly ClaimRequest[], answers: readonly unknown[]) => {
    answers.forEach((a, i) => {
      if (a && typeof a === 'object' && 'token' in a) claims.push({ scope: requests[i]!.scope, id: requests[i]!.id, token: (a as { token: number }).token });
    });
  };
  const mark: MarkRef = { scope: 's1', name: 't:0' };
  for (const [step, o] of ops.entries()) {
    let a: unknown;
    let b: unknown;
    switch (o.kind) {
      case 'claim':
        [a, b] = [await reference.claim(o.request), await store.claim(o.request)];
        remember([o.request], [a]);
        break;
      case 'claimMany':
        [a, b] = [await reference.claimMany(o.requests), await store.claimMany(o.requests)];
        remember(o.requests, a as unknown[]);
        break;
      case 'complete': {
        const r = { ...owned(o.ref), windowMs: o.windowMs, ...(o.result === undefined ? {} : { result: o.result }) };
        [a, b] = [await reference.complete(r), await store.complete(r)];
        break;
      }
      case 'completeMany': {
        const rs = o.refs.map((r) => ({ ...owned(r), windowMs: o.windowMs, result: 'many' }));
        [a, b] = [await reference.completeManyMarked(mark, rs, { from: 0, to: 2 }), await store.completeManyMarked(mark, rs, { from: 0, to: 2 })];
        break;
      }
      case 'fail': {
        const r = { ...owned(o.ref), error: o.error, windowMs: o.windowMs };
        [a, b] = [await reference.fail(r), await store.fail(r)];
        break;
      }
      case 'release':
        [a, b] = [await reference.release(owned(o.ref)), await store.release(owned(o.ref))];
        break;
      case 'releaseMany':
        [a, b] = [await reference.releaseMany(o.refs.map(owned)), await store.releaseMany(o.refs.map(owned))];
        break;
      case 'extend': {
        const r = { ...owned(o.ref), leaseMs: o.leaseMs };
        [a, b] = [await reference.extend(r), await store.extend(r)];
        break;
      }
      case 'get':
        [a, b] = [await reference.get(o.scope, o.id), await store.get(o.scope, o.id)];
        break;
      case 'marked': {
        const requests = [{ ...o.request, position: o.position }];
        [a, b] = [await reference.claimManyMarked(mark, requests, true), await store.claimManyMarked(mark, requests, true)];
        remember(requests, (a as { claims: unknown[] }).claims);
        break;
      }
      case 'advance':
        now += o.ms;
        break;
      case 'close':
        await Promise.all([reference.close(), store.close()]);
        break;
    }
    expect(b, `step ${step}: ${JSON.stringify(o)}`).toEqual(a);
    expect(store.stats(), `stats after step ${step}`).toEqual(reference.stats());
  }
  expect(evictedNew).toEqual(evictedRef);
  // Every record reads the same at the end.
  for (const scope of SCOPES) for (const id of IDS) expect(await store.get(scope, id)).toEqual(await reference.get(scope, id));
}

describe('MemoryStore against the previous implementation', () => {
  it('answers every operation sequence the same, at small capacities (eviction)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 8 }), fc.array(op, { minLength: 1, maxLength: 120 }), (capacity, ops) => runBoth(capacity, ops)),
      { numRuns: 400 },
    );
  });

  it('answers every operation sequence the same, with room for everything', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 200 }), (ops) => runBoth(1_000, ops)),
      { numRuns: 200 },
    );
  });

  it('answers the same over thousands of records: growth, sweeps, evictions, more than 31 windows', async () => {
    const ops: Op[] = [];
    const random = fc.sample(fc.integer({ min: 0, max: 2 ** 31 - 1 }), { numRuns: 12_000, seed: 13 });
    for (let i = 0; i < 6_000; i++) {
      const r = random[i]!;
      const request = {
        scope: SCOPES[r % 3]!,
        id: `id-${r % 4_000}`,
        fingerprint: FINGERPRINTS[r % FINGERPRINTS.length],
        leaseMs: 500,
        windowMs: i % 97 === 0 ? 1_000 + (r % 50) : 60_000, // dozens of distinct windows
      };
      ops.push({ kind: 'claim', request });
      if (r % 5 < 3) ops.push({ kind: 'complete', ref: { pick: 0, variant: 'own', id: request.id }, result: r % 2 ? 'r1' : undefined, windowMs: request.windowMs });
      else if (r % 5 === 3) ops.push({ kind: 'release', ref: { pick: 0, variant: 'own', id: request.id } });
      if (i % 500 === 499) ops.push({ kind: 'advance', ms: 600 });
      if (i % 1_500 === 1_499) ops.push({ kind: 'advance', ms: 70_000 });
    }
    await runBoth(2_500, ops);
  });
});
