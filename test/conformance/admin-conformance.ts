// One AdminStore suite (inspect, list, purge, purgeScope, countByState) for every store that offers
// the capability, as store-conformance.ts is for the store contract: raw states, hostile IDs and
// scopes round-tripping through listings, pagination with a state filter, counts, purges and their
// fencing, expired records read as absent, aborts, invalid options, and an unreachable server.
// Store-specific checks (Redis SCAN and KEYS, PostgreSQL plans and statements) stay in the stores'
// own admin tests, which run this suite too.
import {
  InvalidOptionsError,
  StoreUnavailableError,
  supportsAdmin,
  type AdminEntry,
  type AdminListOptions,
  type AdminStore,
  type DedupStore,
  type MarkStore,
} from '@onceonly/core';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { HOSTILE_IDS } from './store-conformance.js';

export type AdminTestStore = DedupStore & MarkStore & AdminStore;

/** What a store under test provides to the shared admin suite. */
export interface AdminHarness {
  /** A store whose records are isolated from every other test (a random key prefix, a fresh schema). */
  store(): Promise<AdminTestStore>;
  /** A store whose server cannot be reached, failing fast; `close` lets go of it. */
  unreachable(): Promise<{ store: AdminStore; close(): Promise<void> }>;
  /** IDs this store must round-trip, besides {@link HOSTILE_IDS} and {@link ADMIN_HOSTILE_IDS}. */
  hostileIds: readonly string[];
  /** The entry a listing answers for `id`: its `id` (absent when the store cannot recover it) and `keyPart`. */
  entryOf(id: string): { id?: string; keyPart: string };
  /** Moves the lease of an in-progress record into the past (a stalled owner), keeping the record. */
  expireLease(store: AdminTestStore, scope: string, id: string): Promise<void>;
  /** Ends the record's window now, as if its time had passed: the store must treat it as absent. */
  expireRecord(store: AdminTestStore, scope: string, id: string): Promise<void>;
  close?(): Promise<void>;
}

/**
 * IDs beyond {@link HOSTILE_IDS} that an admin tool must give back and reach exactly: SQL and LIKE
 * metacharacters, escapes, controls, and long ones (2048 bytes of UTF-8 is the PostgreSQL store's
 * longest ID; Redis hashes such IDs into their key).
 */
export const ADMIN_HOSTILE_IDS = [
  "'",
  "''",
  '"',
  '\\',
  '\\\\',
  "\\'",
  '%',
  '_',
  '%_%',
  'a%',
  'a_',
  '\\%',
  '\\_',
  "'; DROP TABLE onceonly_records; --",
  '$1',
  '\\x00',
  "E'\\n'",
  'a\nb',
  'a\r\nb',
  '\t',
  '\u0001',
  '\u007f',
  '\u202e',
  '\uFFFF',
  '\u{10FFFF}',
  '😀x',
  'x'.repeat(2048),
  'é'.repeat(1024),
];

const WINDOW = 60_000;
const LEASE = 30_000;

export function describeAdminConformance(name: string, makeHarness: () => AdminHarness): void {
  describe(`admin conformance: ${name}`, () => {
    const h = makeHarness();
    let store: AdminTestStore;

    beforeEach(async () => {
      store = await h.store();
    });
    afterAll(async () => {
      await h.close?.();
    });

    const acquire = async (scope: string, id: string, fingerprint?: string): Promise<number> => {
      const result = await store.claim({ scope, id, leaseMs: LEASE, windowMs: WINDOW, ...(fingerprint ? { fingerprint } : {}) });
      if (result.status !== 'acquired') throw new Error(`expected acquired, got ${result.status}`);
      return result.token;
    };

    /** Claims and completes `ids` in `scope`, in one batch each way. */
    const completed = async (scope: string, ids: readonly string[], result?: (id: string) => string): Promise<void> => {
      const claims = await store.claimMany(ids.map((id) => ({ scope, id, leaseMs: LEASE, windowMs: WINDOW })));
      const refs = claims.map((c, i) => ({
        scope,
        id: ids[i]!,
        token: c.status === 'acquired' ? c.token : -1,
        windowMs: WINDOW,
        ...(result ? { result: result(ids[i]!) } : {}),
      }));
      expect(new Set(await store.completeMany(refs))).toEqual(new Set(['ok']));
    };

    /** Every entry of a scope, page by page. */
    const listAll = async (scope: string, options: Omit<AdminListOptions, 'cursor'> = {}) => {
      const entries: AdminEntry[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await store.list(scope, { ...options, ...(cursor ? { cursor } : {}) });
        expect(page.entries.length).toBeLessThanOrEqual(options.limit ?? 100);
        entries.push(...page.entries);
        cursor = page.cursor;
        pages++;
      } while (cursor !== undefined);
      return { entries, pages };
    };

    it('is recognised by supportsAdmin', () => {
      expect(supportsAdmin(store)).toBe(true);
    });

    it('inspects every state as it is kept: tombstones, expired leases, the suspect mark, expiry', async () => {
      const live = await acquire('s', 'live', 'fp-live');
      const done = await acquire('s', 'done');
      await store.complete({ scope: 's', id: 'done', token: done, result: '{"ok":1}', windowMs: WINDOW });
      const bad = await acquire('s', 'bad');
      await store.fail({ scope: 's', id: 'bad', token: bad, error: 'E_TERMINAL', windowMs: WINDOW });
      const gone = await acquire('s', 'gone');
      await store.release({ scope: 's', id: 'gone', token: gone });
      const stuck = await acquire('s', 'stuck');
      await h.expireLease(store, 's', 'stuck');
      // A takeover that is released again: still suspect.
      const taken = await acquire('s', 'taken');
      await h.expireLease(store, 's', 'taken');
      const takeover = await store.claim({ scope: 's', id: 'taken', leaseMs: LEASE, windowMs: WINDOW });
      expect(takeover).toMatchObject({ status: 'acquired', takeover: true, token: taken + 1 });
      await store.release({ scope: 's', id: 'taken', token: taken + 1 });

      const liveRecord = (await store.inspect('s', 'live'))!;
      expect(liveRecord).toMatchObject({ state: 'in-progress', token: live, fingerprint: 'fp-live', leaseExpired: false, suspect: false });
      expect(liveRecord.leaseUntil).toBeGreaterThanOrEqual(liveRecord.claimedAt + LEASE);
      expect(liveRecord.leaseUntil).toBeLessThanOrEqual(liveRecord.readAt + LEASE);
      expect(liveRecord.claimedAt).toBeLessThanOrEqual(liveRecord.readAt);
      expect(liveRecord.expiresAt).toBeGreaterThan(liveRecord.readAt + WINDOW - 5_000);
      expect(liveRecord.expiresAt).toBeLessThanOrEqual(liveRecord.readAt + WINDOW);
      expect(liveRecord.result).toBeUndefined();

      const doneRecord = (await store.inspect('s', 'done'))!;
      expect(doneRecord).toMatchObject({ state: 'completed', token: done, result: '{"ok":1}', leaseExpired: false, suspect: false });
      expect(doneRecord.leaseUntil).toBeUndefined();
      expect(doneRecord.error).toBeUndefined();
      expect(await store.inspect('s', 'bad')).toMatchObject({ state: 'failed', token: bad, error: 'E_TERMINAL' });
      // Reads as absent to the contract, but the store keeps it (and its token).
      expect(await store.get('s', 'gone')).toBeUndefined();
      expect(await store.inspect('s', 'gone')).toMatchObject({ state: 'released', token: gone, suspect: false });
      expect((await store.inspect('s', 'gone'))!.leaseUntil).toBeUndefined();
      expect(await store.get('s', 'stuck')).toBeUndefined();
      const stuckRecord = (await store.inspect('s', 'stuck'))!;
      expect(stuckRecord).toMatchObject({ state: 'in-progress', token: stuck, leaseExpired: true });
      expect(stuckRecord.leaseUntil).toBeLessThan(stuckRecord.readAt);
      expect(await store.inspect('s', 'taken')).toMatchObject({ state: 'released', token: taken + 1, suspect: true });
      expect(await store.inspect('s', 'never')).toBeUndefined();
      expect(await store.inspect('other', 'live')).toBeUndefined();
      // Inspecting changes nothing.
      expect(await store.claim({ scope: 's', id: 'live', leaseMs: LEASE, windowMs: WINDOW })).toMatchObject({ status: 'in-progress' });
    });

    it('lists hostile IDs back exactly, each with its own record; inspect and purge reach each by ID', async () => {
      const ids = [...new Set([...HOSTILE_IDS, ...ADMIN_HOSTILE_IDS, ...h.hostileIds])];
      const scope = "hostile:{scope}*%_'\\";
      const resultOf = (id: string) => `r:${ids.indexOf(id)}`;
      await completed(scope, ids, resultOf);
      await store.completeManyMarked({ scope, name: 'topic:0' }, [], { from: 0, to: 9 }); // a mark, not a record

      const { entries } = await listAll(scope, { limit: 7, batchSize: 5 });
      expect(entries).toHaveLength(ids.length);
      const key = (e: { id?: string | undefined; keyPart: string }) => JSON.stringify([e.id ?? null, e.keyPart]);
      expect(new Set(entries.map(key))).toEqual(new Set(ids.map((id) => key(h.entryOf(id)))));
      const byKeyPart = new Map(ids.map((id) => [h.entryOf(id).keyPart, id]));
      for (const entry of entries) {
        expect(entry.record).toMatchObject({ state: 'completed', result: resultOf(byKeyPart.get(entry.keyPart)!) });
      }

      for (const id of ids) expect(await store.inspect(scope, id), JSON.stringify(id)).toMatchObject({ state: 'completed', result: resultOf(id) });
      for (const id of ids) expect(await store.purge(scope, id), JSON.stringify(id)).toBe(true);
      expect((await listAll(scope)).entries).toEqual([]);
      expect(await store.getMark({ scope, name: 'topic:0' })).toEqual({ low: 0, high: 9 });
    });

    it('keeps scopes apart, however much their names look like patterns of each other', async () => {
      const scopes = ['s', 'S', 's%', 's_', 's*', 's?', 's[s]', 's\\', 's\\%', "s'", 's"', 'ss', 'sx', 's:', 's:a', 's{x}', 'é', 'e\u0301'];
      for (const [i, scope] of scopes.entries()) await completed(scope, ['same', `own-${i}`]);

      for (const [i, scope] of scopes.entries()) {
        expect((await listAll(scope)).entries.map((e) => e.id).sort(), scope).toEqual(['own-' + i, 'same'].sort());
        expect(await store.countByState(scope), scope).toMatchObject({ completed: 2, total: 2 });
      }
      expect(await store.purgeScope('s%')).toMatchObject({ records: 2 });
      expect(await store.purgeScope('s_', { dryRun: true })).toMatchObject({ records: 2 });
      expect(await store.purgeScope('s\\')).toMatchObject({ records: 2 });
      for (const scope of scopes) {
        const gone = scope === 's%' || scope === 's\\';
        expect((await store.countByState(scope)).total, scope).toBe(gone ? 0 : 2);
      }
    });

    it('pages through a scope larger than one step, with state filter and limit, with no entry twice', async () => {
      const ids = Array.from({ length: 150 }, (_, i) => `id-${i}`);
      await completed('big', ids.slice(0, 100));
      for (const id of ids.slice(100)) await acquire('big', id);
      await completed('big-other', ['id-1', 'x']); // another scope with the same IDs and a similar name

      const first = await store.list('big', { limit: 40, batchSize: 10 });
      expect(first.entries).toHaveLength(40);
      expect(first.cursor).toBeDefined();

      const all = await listAll('big', { limit: 40, batchSize: 10 });
      expect(all.pages).toBeGreaterThanOrEqual(4);
      expect(all.entries.map((e) => e.id).sort()).toEqual([...ids].sort());

      const done = await listAll('big', { state: 'completed', limit: 33, batchSize: 7 });
      expect(done.entries.map((e) => e.id).sort()).toEqual(ids.slice(0, 100).sort());
      const running = await listAll('big', { state: 'in-progress', limit: 1000 });
      expect(running.pages).toBe(1);
      expect(running.entries.map((e) => e.id).sort()).toEqual(ids.slice(100).sort());
      expect(running.entries.every((e) => e.record.state === 'in-progress' && !e.record.leaseExpired)).toBe(true);
      expect(await store.list('big', { state: 'failed' })).toEqual({ entries: [], cursor: undefined });
      // Pages of one entry, and a page exactly as large as the scope.
      expect((await listAll('big-other', { limit: 1, batchSize: 1 })).entries.map((e) => e.id).sort()).toEqual(['id-1', 'x']);
      expect((await listAll('big-other', { limit: 2 })).entries).toHaveLength(2);
      expect(await store.list('empty')).toEqual({ entries: [], cursor: undefined });
    });

    it('counts a scope by state, marks apart', async () => {
      await completed('c', ['c1', 'c2', 'c3']);
      const failed = await acquire('c', 'f1');
      await store.fail({ scope: 'c', id: 'f1', token: failed, error: 'E', windowMs: WINDOW });
      const released = await acquire('c', 'r1');
      await store.release({ scope: 'c', id: 'r1', token: released });
      await acquire('c', 'p1');
      await acquire('c', 'p2');
      await h.expireLease(store, 'c', 'p2');
      const takeover = await store.claim({ scope: 'c', id: 'p2', leaseMs: LEASE, windowMs: WINDOW }); // suspect now
      expect(takeover).toMatchObject({ status: 'acquired', takeover: true });
      await acquire('c', 'p3');
      await h.expireLease(store, 'c', 'p3');
      await store.completeManyMarked({ scope: 'c', name: 't:1' }, [], { from: 5, to: 6 });
      await completed('c-other', ['c1']);

      const expected = { 'in-progress': 3, completed: 3, failed: 1, released: 1, total: 8, leaseExpired: 1, suspect: 1, marks: 1 };
      expect(await store.countByState('c', { batchSize: 2 })).toEqual(expected);
      expect(await store.countByState('c')).toEqual(expected);
      expect(await store.countByState('empty')).toEqual({ 'in-progress': 0, completed: 0, failed: 0, released: 0, total: 0, leaseExpired: 0, suspect: 0, marks: 0 });
    });

    it('treats records whose window is over as absent: not inspected, listed, counted nor purged', async () => {
      await completed('x', ['kept', 'old-done']);
      await acquire('x', 'old-running');
      await h.expireRecord(store, 'x', 'old-done');
      await h.expireRecord(store, 'x', 'old-running');

      expect(await store.inspect('x', 'old-done')).toBeUndefined();
      expect(await store.inspect('x', 'old-running')).toBeUndefined();
      expect((await listAll('x', { batchSize: 1 })).entries.map((e) => e.id)).toEqual(['kept']);
      expect(await store.countByState('x', { batchSize: 1 })).toMatchObject({ completed: 1, 'in-progress': 0, total: 1 });
      expect(await store.purge('x', 'old-done')).toBe(false);
      expect(await store.purgeScope('x', { dryRun: true })).toMatchObject({ records: 1 });
      expect(await store.purgeScope('x')).toMatchObject({ records: 1 });
      expect(await store.inspect('x', 'kept')).toBeUndefined();
      // A new claim starts afresh.
      expect((await store.claim({ scope: 'x', id: 'old-running', leaseMs: LEASE, windowMs: WINDOW })).status).toBe('acquired');
    });

    it('purges one record: its owner is fenced out, and the next claim starts afresh with a higher token', async () => {
      const token = await acquire('p', 'one');
      await completed('p', ['two']);
      expect(await store.purge('p', 'one')).toBe(true);
      expect(await store.purge('p', 'one')).toBe(false);
      expect(await store.purge('p', 'never')).toBe(false);
      expect(await store.inspect('p', 'one')).toBeUndefined();
      expect(await store.complete({ scope: 'p', id: 'one', token, windowMs: WINDOW })).toBe('lease-lost');
      const again = await acquire('p', 'one');
      expect(again).toBeGreaterThan(token);
      expect((await store.inspect('p', 'two'))?.state).toBe('completed');
    });

    it('purges a scope in batches with progress, leaving other scopes and (unless asked) marks alone; dry run removes nothing', async () => {
      const ids = Array.from({ length: 120 }, (_, i) => `r${i}`);
      await completed('gone', ids);
      await completed('gone:a', ['r1']); // a scope whose name extends this one
      await completed('gon', ['r1']);
      await store.completeManyMarked({ scope: 'gone', name: 't:0' }, [], { from: 0, to: 3 });
      await store.completeManyMarked({ scope: 'gone:a', name: 't:0' }, [], { from: 0, to: 3 });

      const dryProgress: number[] = [];
      const dry = await store.purgeScope('gone', { dryRun: true, batchSize: 25, onProgress: ({ records }) => dryProgress.push(records) });
      expect(dry).toEqual({ records: 120, marks: 0, dryRun: true, aborted: false });
      expect(dryProgress.at(-1)).toBe(120);
      expect((await store.countByState('gone')).total).toBe(120);

      const progress: number[] = [];
      const result = await store.purgeScope('gone', { batchSize: 25, onProgress: ({ records }) => progress.push(records) });
      expect(result).toEqual({ records: 120, marks: 0, dryRun: false, aborted: false });
      expect(progress.length).toBeGreaterThan(2);
      expect(progress).toEqual([...progress].sort((a, b) => a - b));
      expect(progress.at(-1)).toBe(120);
      expect((await store.countByState('gone')).total).toBe(0);
      expect(await store.getMark({ scope: 'gone', name: 't:0' })).toEqual({ low: 0, high: 3 });
      expect((await store.inspect('gone:a', 'r1'))?.state).toBe('completed');
      expect((await store.inspect('gon', 'r1'))?.state).toBe('completed');

      expect(await store.purgeScope('gone', { includeMarks: true, dryRun: true })).toEqual({ records: 0, marks: 1, dryRun: true, aborted: false });
      expect(await store.getMark({ scope: 'gone', name: 't:0' })).toEqual({ low: 0, high: 3 });
      expect(await store.purgeScope('gone', { includeMarks: true })).toEqual({ records: 0, marks: 1, dryRun: false, aborted: false });
      expect(await store.getMark({ scope: 'gone', name: 't:0' })).toBeUndefined();
      expect(await store.getMark({ scope: 'gone:a', name: 't:0' })).toEqual({ low: 0, high: 3 });
      expect(await store.countByState('gone:a')).toMatchObject({ total: 1, marks: 1 });
      expect(await store.purgeScope('never')).toEqual({ records: 0, marks: 0, dryRun: false, aborted: false });
    });

    it('stops a purge after the current batch when its signal aborts', async () => {
      await completed('abort', Array.from({ length: 60 }, (_, i) => `a${i}`));
      const controller = new AbortController();
      const result = await store.purgeScope('abort', {
        batchSize: 10,
        signal: controller.signal,
        onProgress: ({ records }) => {
          if (records > 0) controller.abort();
        },
      });
      expect(result.aborted).toBe(true);
      expect(result.records).toBeGreaterThan(0);
      expect(result.records).toBeLessThan(60);
      expect((await store.countByState('abort')).total).toBe(60 - result.records);

      const before = new AbortController();
      before.abort();
      expect(await store.purgeScope('abort', { signal: before.signal })).toEqual({ records: 0, marks: 0, dryRun: false, aborted: true });
      expect((await store.countByState('abort')).total).toBe(60 - result.records);
    });

    it('rejects invalid options and foreign cursors with InvalidOptionsError before touching the store', async () => {
      await expect(store.list('s', { limit: 0 })).rejects.toBeInstanceOf(InvalidOptionsError);
      await expect(store.list('s', { state: 'gone' as never })).rejects.toBeInstanceOf(InvalidOptionsError);
      await expect(store.list('s', { cursor: 'not-a-cursor' })).rejects.toThrow(/cursor/);
      await expect(store.list('s', { cursor: 'not-a-cursor' })).rejects.toBeInstanceOf(InvalidOptionsError);
      await expect(store.purgeScope('s', { batchSize: 1e9 })).rejects.toBeInstanceOf(InvalidOptionsError);
      await expect(store.purgeScope('s', { onProgress: 'no' as never })).rejects.toBeInstanceOf(InvalidOptionsError);
      await expect(store.countByState('s', { nope: 1 } as never)).rejects.toBeInstanceOf(InvalidOptionsError);
      await expect(store.list('')).rejects.toBeInstanceOf(TypeError);
      await expect(store.countByState('')).rejects.toBeInstanceOf(TypeError);
      await expect(store.purgeScope('')).rejects.toBeInstanceOf(TypeError);
    });

    it('rejects with StoreUnavailableError when the server cannot be reached', async () => {
      const { store: unreachable, close } = await h.unreachable();
      try {
        await expect(unreachable.inspect('s', 'a')).rejects.toBeInstanceOf(StoreUnavailableError);
        await expect(unreachable.list('s')).rejects.toBeInstanceOf(StoreUnavailableError);
        await expect(unreachable.purgeScope('s')).rejects.toBeInstanceOf(StoreUnavailableError);
        await expect(unreachable.countByState('s')).rejects.toBeInstanceOf(StoreUnavailableError);
        await expect(unreachable.purge('s', 'a')).rejects.toBeInstanceOf(StoreUnavailableError);
      } finally {
        await close();
      }
    });
  });
}
