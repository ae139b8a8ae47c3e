import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { supportsMarks, type ClaimRequest, type DedupStore, type MarkStore } from '@onceonly/core';

/** What a store under test provides to the shared suite. */
export interface StoreHarness {
  /** A store whose records are isolated from every other test (e.g. a random key prefix). */
  store(): Promise<DedupStore>;
  /**
   * Another store instance on its own connection, sharing `store()`'s records (for concurrency tests).
   * Stores with no notion of connections return the same instance.
   */
  peer(store: DedupStore): Promise<DedupStore>;
  /** Lets `ms` of store time pass (a fake clock, or real waiting). */
  advance(ms: number): Promise<void>;
  /** Lease and window lengths suited to the store's clock, in ms: lease < window. */
  leaseMs: number;
  windowMs: number;
  close?(): Promise<void>;
}

// IDs that must stay independent records in any store: separators, wildcards, hash-tag braces, escapes,
// non-ASCII, and look-alikes of each other.
export const HOSTILE_IDS = [
  'a',
  'a:b',
  'a:b:c',
  '{a}',
  'a}',
  '{',
  '}b',
  '*',
  'a*',
  '%7B',
  '%',
  'A',
  'ü',
  'u\u0308', // u + combining diaeresis: a different string from 'ü'
  '日本語',
  '😀',
  '?[]^\\',
  ' ',
  'x'.repeat(256),
  'é'.repeat(128), // 256 bytes of UTF-8
];

/**
 * One suite every store must pass: each transition, window and lease expiry, fencing, batch semantics,
 * concurrency and hostile IDs.
 */
export function describeStoreConformance(name: string, makeHarness: () => StoreHarness): void {
  describe(`store conformance: ${name}`, () => {
    const h = makeHarness();
    let store: DedupStore;
    let scope: string;
    let n = 0;
    const req = (id: string, extra: Partial<ClaimRequest> = {}): ClaimRequest => ({
      scope,
      id,
      leaseMs: h.leaseMs,
      windowMs: h.windowMs,
      ...extra,
    });
    const acquire = async (id: string, extra: Partial<ClaimRequest> = {}) => {
      const claim = await store.claim(req(id, extra));
      if (claim.status !== 'acquired') throw new Error(`expected to acquire ${id}, got ${claim.status}`);
      return claim;
    };

    beforeEach(async () => {
      store = await h.store();
      scope = `scope-${++n}`;
    });
    afterAll(async () => {
      await h.close?.();
    });

    it('claims an absent ID', async () => {
      const claim = await store.claim(req('m1', { fingerprint: 'fp1' }));
      expect(claim.status).toBe('acquired');
      if (claim.status !== 'acquired') return;
      expect(claim.token).toBeGreaterThan(0);
      expect(claim.takeover).toBe(false);
      expect(claim.leaseUntil).toBeGreaterThan(Date.now() - 60_000);
    });

    it('answers in-progress, with the record, while a live lease is held', async () => {
      const first = await acquire('m1', { fingerprint: 'fp1' });
      const second = await store.claim(req('m1', { fingerprint: 'fp2' }));
      expect(second.status).toBe('in-progress');
      if (second.status === 'acquired') return;
      expect(second.record.state).toBe('in-progress');
      expect(second.record.token).toBe(first.token);
      expect(second.record.fingerprint).toBe('fp1');
      expect(second.record.leaseUntil).toBeGreaterThan(second.record.claimedAt);
    });

    it('completes, then answers duplicates with the recorded result', async () => {
      const { token } = await acquire('m1', { fingerprint: 'fp1' });
      expect(await store.complete({ scope, id: 'm1', token, result: '{"sent":true}', windowMs: h.windowMs })).toBe('ok');
      const again = await store.claim(req('m1'));
      expect(again.status).toBe('completed');
      if (again.status === 'acquired') return;
      expect(again.record).toMatchObject({ state: 'completed', token, fingerprint: 'fp1', result: '{"sent":true}' });
      expect(again.record.leaseUntil).toBeUndefined();
      expect(await store.get(scope, 'm1')).toMatchObject({ state: 'completed', token });
    });

    it('completes without a result when none is given', async () => {
      const { token } = await acquire('m1');
      expect(await store.complete({ scope, id: 'm1', token, windowMs: h.windowMs })).toBe('ok');
      const record = await store.get(scope, 'm1');
      expect(record?.state).toBe('completed');
      expect(record?.result).toBeUndefined();
    });

    it('remembers a terminal failure for the window', async () => {
      const { token } = await acquire('m1');
      expect(await store.fail({ scope, id: 'm1', token, error: 'BadInput', windowMs: h.windowMs })).toBe('ok');
      const again = await store.claim(req('m1'));
      expect(again.status).toBe('failed');
      if (again.status === 'acquired') return;
      expect(again.record).toMatchObject({ state: 'failed', token, error: 'BadInput' });
    });

    it('release makes the ID claimable again, with a higher token', async () => {
      const first = await acquire('m1');
      expect(await store.release({ scope, id: 'm1', token: first.token })).toBe('ok');
      expect(await store.get(scope, 'm1')).toBeUndefined();
      const second = await acquire('m1');
      expect(second.token).toBeGreaterThan(first.token);
      expect(second.takeover).toBe(false);
    });

    it('an expired lease is taken over with a higher token, never stuck in progress', async () => {
      const first = await acquire('m1');
      await h.advance(h.leaseMs + 50);
      expect(await store.get(scope, 'm1')).toBeUndefined();
      const second = await acquire('m1');
      expect(second.takeover).toBe(true);
      expect(second.token).toBeGreaterThan(first.token);
    });

    describe('suspect records: once an owner may have run the handler, every next claim is a takeover until a completion or failure', () => {
      const takeOver = async (id: string) => {
        const first = await acquire(id);
        await h.advance(h.leaseMs + 50);
        const second = await acquire(id);
        expect(second.takeover).toBe(true);
        return { first, second };
      };

      it('a released takeover claim stays suspect: the next claim is a takeover, with a higher token', async () => {
        const { second } = await takeOver('m1');
        expect(await store.release({ scope, id: 'm1', token: second.token })).toBe('ok');
        expect(await store.get(scope, 'm1')).toBeUndefined(); // still reads as absent
        const third = await acquire('m1');
        expect(third.takeover).toBe(true);
        expect(third.token).toBeGreaterThan(second.token);
        // ...and again after another release: release never clears it.
        expect(await store.release({ scope, id: 'm1', token: third.token })).toBe('ok');
        const [fourth] = await store.claimMany([req('m1')]);
        expect(fourth).toMatchObject({ status: 'acquired', takeover: true });
      });

      it('a takeover claim whose lease expires again stays suspect', async () => {
        const { second } = await takeOver('m1');
        await h.advance(h.leaseMs + 50);
        const third = await acquire('m1');
        expect(third.takeover).toBe(true);
        expect(third.token).toBeGreaterThan(second.token);
      });

      it('a batch release of a takeover claim keeps it suspect', async () => {
        const { second } = await takeOver('m1');
        const plain = await acquire('m2');
        expect(await store.releaseMany([{ scope, id: 'm1', token: second.token }, { scope, id: 'm2', token: plain.token }])).toEqual(['ok', 'ok']);
        const [again1, again2] = await store.claimMany([req('m1'), req('m2')]);
        expect(again1).toMatchObject({ status: 'acquired', takeover: true });
        expect(again2).toMatchObject({ status: 'acquired', takeover: false });
      });

      it('a completion ends it: the record is completed, a duplicate', async () => {
        const { second } = await takeOver('m1');
        expect(await store.release({ scope, id: 'm1', token: second.token })).toBe('ok');
        const third = await acquire('m1');
        expect(await store.complete({ scope, id: 'm1', token: third.token, windowMs: h.windowMs })).toBe('ok');
        expect((await store.claim(req('m1'))).status).toBe('completed');
        expect(await store.get(scope, 'm1')).toMatchObject({ state: 'completed', token: third.token });
      });

      it('a recorded failure ends it: the record is failed', async () => {
        const { second } = await takeOver('m1');
        expect(await store.fail({ scope, id: 'm1', token: second.token, error: 'TAKEOVER_DEAD_LETTER', windowMs: h.windowMs })).toBe('ok');
        const again = await store.claim(req('m1'));
        expect(again.status).toBe('failed');
        expect(again.status !== 'acquired' && again.record.error).toBe('TAKEOVER_DEAD_LETTER');
      });

      it('a release of a claim that was never suspect is plain absent: no takeover', async () => {
        const first = await acquire('m1');
        expect(await store.release({ scope, id: 'm1', token: first.token })).toBe('ok');
        const second = await acquire('m1');
        expect(second.takeover).toBe(false);
        expect(await store.release({ scope, id: 'm1', token: second.token })).toBe('ok');
        expect((await acquire('m1')).takeover).toBe(false);
      });

      it('a marked batch claim reports a suspect record as a takeover too', async () => {
        if (!supportsMarks(store)) return;
        const { second } = await takeOver('m1');
        expect(await store.release({ scope, id: 'm1', token: second.token })).toBe('ok');
        const { claims } = await store.claimManyMarked({ scope, name: 't:0' }, [{ ...req('m1'), position: 7 }], true);
        expect(claims[0]).toMatchObject({ status: 'acquired', takeover: true });
      });
    });

    it('a stale owner can neither complete, extend, release nor fail', async () => {
      const stale = await acquire('m1');
      await h.advance(h.leaseMs + 50);
      const current = await acquire('m1');
      const ref = { scope, id: 'm1', token: stale.token };
      expect(await store.complete({ ...ref, result: 'stale', windowMs: h.windowMs })).toBe('lease-lost');
      expect(await store.extend({ ...ref, leaseMs: h.leaseMs })).toBe('lease-lost');
      expect(await store.release(ref)).toBe('lease-lost');
      expect(await store.fail({ ...ref, error: 'X', windowMs: h.windowMs })).toBe('lease-lost');
      // The current owner's record is untouched and still completes.
      const record = await store.get(scope, 'm1');
      expect(record).toMatchObject({ state: 'in-progress', token: current.token });
      expect(await store.complete({ scope, id: 'm1', token: current.token, result: 'new', windowMs: h.windowMs })).toBe('ok');
      expect((await store.get(scope, 'm1'))?.result).toBe('new');
    });

    it('a stale owner cannot overwrite a completed record or release a newer claim', async () => {
      const first = await acquire('m1');
      expect(await store.complete({ scope, id: 'm1', token: first.token, result: 'one', windowMs: h.windowMs })).toBe('ok');
      expect(await store.complete({ scope, id: 'm1', token: first.token, result: 'two', windowMs: h.windowMs })).toBe('lease-lost');
      expect(await store.release({ scope, id: 'm1', token: first.token })).toBe('lease-lost');
      expect(await store.get(scope, 'm1')).toMatchObject({ state: 'completed', result: 'one' });
    });

    it('a released owner cannot act again after someone else claimed', async () => {
      const first = await acquire('m1');
      expect(await store.release({ scope, id: 'm1', token: first.token })).toBe('ok');
      const second = await acquire('m1');
      expect(await store.complete({ scope, id: 'm1', token: first.token, windowMs: h.windowMs })).toBe('lease-lost');
      expect(await store.get(scope, 'm1')).toMatchObject({ state: 'in-progress', token: second.token });
    });

    it('extend keeps the lease alive past its first end', async () => {
      const claim = await acquire('m1');
      await h.advance(Math.floor(h.leaseMs * 0.6));
      expect(await store.extend({ scope, id: 'm1', token: claim.token, leaseMs: h.leaseMs })).toBe('ok');
      await h.advance(Math.floor(h.leaseMs * 0.6));
      const other = await store.claim(req('m1'));
      expect(other.status).toBe('in-progress');
      if (other.status === 'acquired') return;
      expect(other.record.leaseUntil).toBeGreaterThan(claim.leaseUntil);
    });

    it('an owner whose lease ran out but was not taken over may still complete', async () => {
      const claim = await acquire('m1');
      await h.advance(h.leaseMs + 50);
      expect(await store.complete({ scope, id: 'm1', token: claim.token, windowMs: h.windowMs })).toBe('ok');
      expect((await store.claim(req('m1'))).status).toBe('completed');
    });

    it('a completed record expires with its window and the ID is new again', async () => {
      const claim = await acquire('m1');
      expect(await store.complete({ scope, id: 'm1', token: claim.token, windowMs: h.leaseMs * 2 })).toBe('ok');
      await h.advance(h.leaseMs);
      expect((await store.claim(req('m1'))).status).toBe('completed');
      await h.advance(h.leaseMs + 100);
      expect(await store.get(scope, 'm1')).toBeUndefined();
      const again = await acquire('m1');
      expect(again.takeover).toBe(false);
    });

    it('a failed record expires with its window', async () => {
      const claim = await acquire('m1');
      expect(await store.fail({ scope, id: 'm1', token: claim.token, error: 'E', windowMs: h.leaseMs })).toBe('ok');
      await h.advance(h.leaseMs + 100);
      expect((await store.claim(req('m1'))).status).toBe('acquired');
    });

    it('the same ID in two scopes is two records', async () => {
      const a = await acquire('m1');
      expect(await store.complete({ scope, id: 'm1', token: a.token, windowMs: h.windowMs })).toBe('ok');
      const other = await store.claim({ ...req('m1'), scope: `${scope}-other` });
      expect(other.status).toBe('acquired');
    });

    it('hostile IDs stay independent records', async () => {
      const tokens = new Map<string, number>();
      for (const id of HOSTILE_IDS) tokens.set(id, (await acquire(id)).token);
      // Complete every other one; each answers for itself only.
      for (const [i, id] of HOSTILE_IDS.entries()) {
        if (i % 2 === 0) expect(await store.complete({ scope, id, token: tokens.get(id)!, result: `r${i}`, windowMs: h.windowMs })).toBe('ok');
      }
      for (const [i, id] of HOSTILE_IDS.entries()) {
        const record = await store.get(scope, id);
        if (i % 2 === 0) expect(record).toMatchObject({ state: 'completed', result: `r${i}` });
        else expect(record).toMatchObject({ state: 'in-progress', token: tokens.get(id) });
      }
      // Scopes with the same characters stay apart too.
      const odd = await store.claim({ ...req('b'), scope: `${scope}:a` });
      const even = await store.claim({ ...req('a:b'), scope });
      expect(odd.status).toBe('acquired');
      expect(even.status).toBe('in-progress');
    });

    it('50 concurrent claims of one ID from separate clients: exactly one wins', async () => {
      const clients = await Promise.all(Array.from({ length: 50 }, () => h.peer(store)));
      const results = await Promise.all(clients.map((client) => client.claim(req('contended'))));
      const winners = results.filter((r) => r.status === 'acquired');
      expect(winners).toHaveLength(1);
      expect(results.filter((r) => r.status === 'in-progress')).toHaveLength(49);
    });

    it('claimMany answers each message in order, in one call', async () => {
      const done = await acquire('done');
      await store.complete({ scope, id: 'done', token: done.token, result: 'R', windowMs: h.windowMs });
      await acquire('busy');
      const answers = await store.claimMany([req('new1'), req('done'), req('busy'), req('new2')]);
      expect(answers.map((a) => a.status)).toEqual(['acquired', 'completed', 'in-progress', 'acquired']);
      expect(answers[1]).toMatchObject({ record: { result: 'R' } });
      expect(await store.claimMany([])).toEqual([]);
    });

    it('completeMany, extendMany and releaseMany apply per message and reject stale tokens', async () => {
      const [a, b, c] = (await store.claimMany([req('a'), req('b'), req('c')])) as { status: 'acquired'; token: number }[];
      expect([a, b, c].every((x) => x!.status === 'acquired')).toBe(true);
      expect(await store.extendMany([
        { scope, id: 'a', token: a!.token, leaseMs: h.leaseMs },
        { scope, id: 'b', token: b!.token + 1000, leaseMs: h.leaseMs },
      ])).toEqual(['ok', 'lease-lost']);
      expect(await store.completeMany([
        { scope, id: 'a', token: a!.token, result: 'ra', windowMs: h.windowMs },
        { scope, id: 'b', token: b!.token + 1000, windowMs: h.windowMs },
      ])).toEqual(['ok', 'lease-lost']);
      expect(await store.releaseMany([
        { scope, id: 'b', token: b!.token },
        { scope, id: 'c', token: c!.token + 1000 },
      ])).toEqual(['ok', 'lease-lost']);
      expect(await store.get(scope, 'a')).toMatchObject({ state: 'completed', result: 'ra' });
      expect(await store.get(scope, 'b')).toBeUndefined();
      expect(await store.get(scope, 'c')).toMatchObject({ state: 'in-progress', token: c!.token });
      expect(await store.completeMany([])).toEqual([]);
      expect(await store.releaseMany([])).toEqual([]);
    });

    it('a batch takes over expired leases with higher tokens', async () => {
      const first = await acquire('x');
      await h.advance(h.leaseMs + 50);
      const [again] = await store.claimMany([req('x')]);
      expect(again).toMatchObject({ status: 'acquired', takeover: true });
      expect((again as { token: number }).token).toBeGreaterThan(first.token);
    });

    describe('offset high-water marks', () => {
      let marks: DedupStore & MarkStore;
      const ref = () => ({ scope, name: 'orders:3' });
      const at = (id: string, position: number) => ({ ...req(id), position });
      beforeEach(() => {
        if (!supportsMarks(store)) throw new Error('store does not implement MarkStore');
        marks = store;
      });
      const tokenOf = (claim: unknown) => (claim as { token: number }).token;

      it('reads no mark at first and claims every position', async () => {
        const { mark, claims } = await marks.claimManyMarked(ref(), [at('a', 0), at('b', 1)], true);
        expect(mark).toBeUndefined();
        expect(claims.map((c) => c?.status)).toEqual(['acquired', 'acquired']);
        expect(await marks.getMark(ref())).toBeUndefined();
      });

      it('advances with the completion and skips positions inside the mark', async () => {
        const { claims } = await marks.claimManyMarked(ref(), [at('a', 10), at('b', 11)], true);
        const done = await marks.completeManyMarked(
          ref(),
          claims.map((c, i) => ({ scope, id: ['a', 'b'][i]!, token: tokenOf(c), windowMs: h.windowMs })),
          { from: 10, to: 11 },
        );
        expect(done).toEqual({ results: ['ok', 'ok'], mark: { low: 10, high: 11 } });
        const again = await marks.claimManyMarked(ref(), [at('x', 9), at('y', 10), at('z', 11), at('w', 12)], true);
        expect(again.mark).toEqual({ low: 10, high: 11 });
        expect(again.claims.map((c) => c?.status)).toEqual(['acquired', undefined, undefined, 'acquired']);
        // Not claimed: nothing was written for the skipped IDs.
        expect(await store.get(scope, 'y')).toBeUndefined();
        // reprocess: skipMarked false claims them all.
        const all = await marks.claimManyMarked(ref(), [at('y2', 10)], false);
        expect(all.claims[0]?.status).toBe('acquired');
      });

      it('skips by the mark after the ID records expired', async () => {
        const windowMs = h.leaseMs * 2; // a short window: the record expires, the mark does not
        const { claims } = await marks.claimManyMarked(ref(), [{ ...req('a', { windowMs }), position: 0 }], true);
        await marks.completeManyMarked(ref(), [{ scope, id: 'a', token: tokenOf(claims[0]), windowMs }], { from: 0, to: 0 });
        await h.advance(windowMs + 100);
        expect(await store.get(scope, 'a')).toBeUndefined();
        const again = await marks.claimManyMarked(ref(), [at('a', 0)], true);
        expect(again.claims).toEqual([undefined]);
      });

      it('extends over touching runs, replaces after a gap, keeps when a run lies below', async () => {
        const advance = (from: number, to: number) => marks.completeManyMarked(ref(), [], { from, to });
        expect((await advance(0, 4)).mark).toEqual({ low: 0, high: 4 });
        expect((await advance(5, 9)).mark).toEqual({ low: 0, high: 9 });
        expect((await advance(3, 12)).mark).toEqual({ low: 0, high: 12 });
        expect((await advance(20, 25)).mark).toEqual({ low: 20, high: 25 }); // 13..19 never seen done
        expect((await advance(0, 3)).mark).toEqual({ low: 20, high: 25 });
        expect((await advance(15, 19)).mark).toEqual({ low: 15, high: 25 });
        expect(await marks.getMark(ref())).toEqual({ low: 15, high: 25 });
        expect(await marks.getMark({ scope, name: 'orders:4' })).toBeUndefined();
      });

      it('does not advance when a completion in the same call lost its lease', async () => {
        const { claims } = await marks.claimManyMarked(ref(), [at('a', 0), at('b', 1)], true);
        const out = await marks.completeManyMarked(
          ref(),
          [
            { scope, id: 'a', token: tokenOf(claims[0]), windowMs: h.windowMs },
            { scope, id: 'b', token: tokenOf(claims[1]) + 1000, windowMs: h.windowMs },
          ],
          { from: 0, to: 1 },
        );
        expect(out).toEqual({ results: ['ok', 'lease-lost'], mark: undefined });
      });

      it('keeps marks of scopes apart and deletes them', async () => {
        await marks.completeManyMarked(ref(), [], { from: 0, to: 9 });
        expect(await marks.getMark({ scope: `${scope}-other`, name: 'orders:3' })).toBeUndefined();
        await marks.deleteMark(ref());
        expect(await marks.getMark(ref())).toBeUndefined();
      });
    });
  });
}
