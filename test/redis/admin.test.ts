// The AdminStore capability of the Redis store (inspect, list, purge, purgeScope, countByState) on a
// real Redis: raw states, hostile IDs round-tripping through listings, SCAN pagination, scope
// isolation, marks left alone unless asked, fencing after a purge, and a Redis Cluster.
import { InvalidOptionsError, StoreUnavailableError, supportsAdmin, type AdminEntry } from '@onceonly/core';
import { encodeKeyPart, HASHED_MARKER, RedisStore } from '@onceonly/redis';
import { Cluster, Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { hostile } from '../../packages/redis/test/hostile-ids.js';
import { HOSTILE_IDS } from '../conformance/store-conformance.js';
import { findRedisServerBinary, freePort, startRedisCluster, type LocalRedisCluster } from '../support/redis-server.js';
import { connectSharedRedis, deleteUnder, expireLease, keysUnder, randomPrefix } from './redis-test-context.js';

const WINDOW = 60_000;
const LEASE = 30_000;

let client: Redis;
let prefix: string;
let store: RedisStore;

beforeAll(async () => {
  client = await connectSharedRedis();
});
afterAll(() => client.disconnect());
beforeEach(() => {
  prefix = randomPrefix();
  store = new RedisStore({ client, prefix });
});
afterEach(async () => {
  await deleteUnder(client, prefix);
});

async function serverNow(): Promise<number> {
  const [seconds, micros] = await client.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

async function acquire(scope: string, id: string, fingerprint?: string): Promise<number> {
  const result = await store.claim({ scope, id, leaseMs: LEASE, windowMs: WINDOW, ...(fingerprint ? { fingerprint } : {}) });
  if (result.status !== 'acquired') throw new Error(`expected acquired, got ${result.status}`);
  return result.token;
}

/** Claims and completes `ids` in `scope`, in one batch each way. */
async function completed(scope: string, ids: readonly string[]): Promise<void> {
  const claims = await store.claimMany(ids.map((id) => ({ scope, id, leaseMs: LEASE, windowMs: WINDOW })));
  const refs = claims.map((c, i) => ({ scope, id: ids[i]!, token: c.status === 'acquired' ? c.token : -1, windowMs: WINDOW }));
  expect(new Set(await store.completeMany(refs))).toEqual(new Set(['ok']));
}

/** Every entry of a scope, page by page. */
async function listAll(scope: string, options: { limit?: number; batchSize?: number; state?: 'in-progress' | 'completed' | 'failed' | 'released' } = {}) {
  const entries: AdminEntry[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const page = await store.list(scope, { ...options, ...(cursor ? { cursor } : {}) });
    entries.push(...page.entries);
    cursor = page.cursor;
    pages++;
  } while (cursor !== undefined);
  return { entries, pages };
}

describe('RedisStore as an AdminStore', () => {
  it('is recognised by supportsAdmin', () => {
    expect(supportsAdmin(store)).toBe(true);
  });

  it('inspects every state as it is kept: tombstones, expired leases, the suspect mark, expiry', async () => {
    const before = await serverNow();
    const live = await acquire('s', 'live', 'fp-live');
    const done = await acquire('s', 'done');
    await store.complete({ scope: 's', id: 'done', token: done, result: '{"ok":1}', windowMs: WINDOW });
    const bad = await acquire('s', 'bad');
    await store.fail({ scope: 's', id: 'bad', token: bad, error: 'E_TERMINAL', windowMs: WINDOW });
    const gone = await acquire('s', 'gone');
    await store.release({ scope: 's', id: 'gone', token: gone });
    const stuck = await acquire('s', 'stuck');
    await expireLease(client, store.keyOf('s', 'stuck')); // its lease ran out
    // A takeover that is released again: still suspect.
    const taken = await acquire('s', 'taken');
    await expireLease(client, store.keyOf('s', 'taken'));
    const takeover = await store.claim({ scope: 's', id: 'taken', leaseMs: LEASE, windowMs: WINDOW });
    expect(takeover).toMatchObject({ status: 'acquired', takeover: true, token: taken + 1 });
    await store.release({ scope: 's', id: 'taken', token: taken + 1 });
    const after = await serverNow();

    const liveRecord = await store.inspect('s', 'live');
    expect(liveRecord).toMatchObject({ state: 'in-progress', token: live, fingerprint: 'fp-live', leaseExpired: false, suspect: false });
    expect(liveRecord!.leaseUntil).toBeGreaterThanOrEqual(before + LEASE);
    expect(liveRecord!.expiresAt).toBeGreaterThan(after + WINDOW - 2_000);
    expect(liveRecord!.expiresAt).toBeLessThanOrEqual(liveRecord!.readAt + WINDOW);
    expect(liveRecord!.readAt).toBeGreaterThanOrEqual(before);

    expect(await store.inspect('s', 'done')).toMatchObject({ state: 'completed', token: done, result: '{"ok":1}', leaseExpired: false });
    expect((await store.inspect('s', 'done'))!.leaseUntil).toBeUndefined();
    expect(await store.inspect('s', 'bad')).toMatchObject({ state: 'failed', token: bad, error: 'E_TERMINAL' });
    // Reads as absent to the contract, but the store keeps it (and its token).
    expect(await store.get('s', 'gone')).toBeUndefined();
    expect(await store.inspect('s', 'gone')).toMatchObject({ state: 'released', token: gone, suspect: false });
    expect(await store.get('s', 'stuck')).toBeUndefined();
    expect(await store.inspect('s', 'stuck')).toMatchObject({ state: 'in-progress', token: stuck, leaseExpired: true, leaseUntil: 1 });
    expect(await store.inspect('s', 'taken')).toMatchObject({ state: 'released', token: taken + 1, suspect: true });
    expect(await store.inspect('s', 'never')).toBeUndefined();
    // Inspecting changes nothing.
    expect(await store.claim({ scope: 's', id: 'live', leaseMs: LEASE, windowMs: WINDOW })).toMatchObject({ status: 'in-progress' });
  });

  it('lists hostile IDs back exactly; hashed ones show their key part, and inspect/purge still reach them by ID', async () => {
    const ids = [...new Set([...HOSTILE_IDS, ...hostile])];
    const scope = 'hostile:{scope}*';
    await completed(scope, ids);
    await store.completeManyMarked({ scope, name: 'topic:0' }, [], { from: 0, to: 9 }); // a mark, not a record

    const { entries } = await listAll(scope, { limit: 7, batchSize: 5 });
    expect(entries).toHaveLength(ids.length);
    const escaped = ids.filter((id) => !encodeKeyPart(id).startsWith(HASHED_MARKER));
    const hashed = ids.filter((id) => encodeKeyPart(id).startsWith(HASHED_MARKER));
    expect(hashed.length).toBeGreaterThan(3);
    expect(new Set(entries.filter((e) => e.id !== undefined).map((e) => e.id))).toEqual(new Set(escaped));
    expect(new Set(entries.filter((e) => e.id === undefined).map((e) => e.keyPart))).toEqual(new Set(hashed.map(encodeKeyPart)));
    for (const entry of entries) {
      expect(entry.record.state).toBe('completed');
      if (entry.id !== undefined) expect(entry.keyPart).toBe(encodeKeyPart(entry.id));
    }

    for (const id of ids) expect((await store.inspect(scope, id))?.state, JSON.stringify(id)).toBe('completed');
    for (const id of ids) expect(await store.purge(scope, id), JSON.stringify(id)).toBe(true);
    expect((await listAll(scope)).entries).toEqual([]);
    expect(await store.getMark({ scope, name: 'topic:0' })).toEqual({ low: 0, high: 9 });
  });

  it('pages through a scope larger than one SCAN step, with state filter and limit, with no entry twice', async () => {
    const ids = Array.from({ length: 150 }, (_, i) => `id-${i}`);
    await completed('big', ids.slice(0, 100));
    for (const id of ids.slice(100)) await acquire('big', id);
    await completed('big-other', ['id-1', 'x']); // another scope with the same IDs and a similar name

    const scan = vi.spyOn(client, 'scan');
    const first = await store.list('big', { limit: 40, batchSize: 10 });
    expect(first.entries).toHaveLength(40);
    expect(first.cursor).toBeDefined();
    expect(scan.mock.calls.length).toBeGreaterThan(1);
    scan.mockRestore();

    const all = await listAll('big', { limit: 40, batchSize: 10 });
    expect(all.pages).toBeGreaterThanOrEqual(4);
    expect(all.entries.map((e) => e.id).sort()).toEqual([...ids].sort());

    const done = await listAll('big', { state: 'completed', limit: 33, batchSize: 7 });
    expect(done.entries.map((e) => e.id).sort()).toEqual(ids.slice(0, 100).sort());
    const running = await listAll('big', { state: 'in-progress', limit: 1000 });
    expect(running.pages).toBe(1);
    expect(running.entries.map((e) => e.id).sort()).toEqual(ids.slice(100).sort());
    expect(running.entries.every((e) => e.record.state === 'in-progress' && !e.record.leaseExpired)).toBe(true);
    expect((await store.list('big', { state: 'failed' })).entries).toEqual([]);
  });

  it('never uses KEYS', async () => {
    const keys = vi.spyOn(client, 'keys');
    await completed('k', ['a', 'b']);
    await store.list('k');
    await store.countByState('k');
    await store.purgeScope('k', { dryRun: true });
    await store.purgeScope('k');
    expect(keys).not.toHaveBeenCalled();
    keys.mockRestore();
  });

  it('counts a scope by state, marks apart', async () => {
    await completed('c', ['c1', 'c2', 'c3']);
    const failed = await acquire('c', 'f1');
    await store.fail({ scope: 'c', id: 'f1', token: failed, error: 'E', windowMs: WINDOW });
    const released = await acquire('c', 'r1');
    await store.release({ scope: 'c', id: 'r1', token: released });
    await acquire('c', 'p1');
    await acquire('c', 'p2');
    await expireLease(client, store.keyOf('c', 'p2'));
    const takeover = await store.claim({ scope: 'c', id: 'p2', leaseMs: LEASE, windowMs: WINDOW }); // suspect now
    expect(takeover).toMatchObject({ status: 'acquired', takeover: true });
    await acquire('c', 'p3');
    await expireLease(client, store.keyOf('c', 'p3'));
    await store.completeManyMarked({ scope: 'c', name: 't:1' }, [], { from: 5, to: 6 });
    await completed('c-other', ['c1']);

    expect(await store.countByState('c', { batchSize: 2 })).toEqual({
      'in-progress': 3,
      completed: 3,
      failed: 1,
      released: 1,
      total: 8,
      leaseExpired: 1,
      suspect: 1,
      marks: 1,
    });
    expect(await store.countByState('empty')).toMatchObject({ total: 0, marks: 0 });
  });

  it('purges one record: its owner is fenced out, and the next claim starts afresh with a higher token', async () => {
    const token = await acquire('p', 'one');
    expect(await store.purge('p', 'one')).toBe(true);
    expect(await store.purge('p', 'one')).toBe(false);
    expect(await store.inspect('p', 'one')).toBeUndefined();
    expect(await store.complete({ scope: 'p', id: 'one', token, windowMs: WINDOW })).toBe('lease-lost');
    const again = await acquire('p', 'one');
    expect(again).toBeGreaterThan(token);
  });

  it('purges a scope in batches with progress, leaving other scopes and (unless asked) marks alone; dry run removes nothing', async () => {
    const ids = Array.from({ length: 120 }, (_, i) => `r${i}`);
    await completed('gone', ids);
    await completed('gone:a', ['r1']); // a scope whose name extends this one
    await completed('gon', ['r1']);
    await store.completeManyMarked({ scope: 'gone', name: 't:0' }, [], { from: 0, to: 3 });

    const dry = await store.purgeScope('gone', { dryRun: true, batchSize: 25 });
    expect(dry).toEqual({ records: 120, marks: 0, dryRun: true, aborted: false });
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

    expect(await store.purgeScope('gone', { includeMarks: true, dryRun: true })).toMatchObject({ records: 0, marks: 1 });
    expect(await store.purgeScope('gone', { includeMarks: true })).toMatchObject({ records: 0, marks: 1 });
    expect(await store.getMark({ scope: 'gone', name: 't:0' })).toBeUndefined();
    const left = await keysUnder(client, prefix);
    expect(left.filter((key) => !key.endsWith(':!epoch')).length).toBe(2); // gone:a and gon
    // The scope's epoch stays: removing it would make every store that claims here report a reset.
    expect(left).toContain(store.epochKeyOf('gone'));
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
  });

  it('rejects invalid options and foreign cursors with InvalidOptionsError before touching Redis', async () => {
    await expect(store.list('s', { limit: 0 })).rejects.toBeInstanceOf(InvalidOptionsError);
    await expect(store.list('s', { state: 'gone' as never })).rejects.toBeInstanceOf(InvalidOptionsError);
    await expect(store.list('s', { cursor: 'not-a-cursor' })).rejects.toThrow(/cursor/);
    await expect(store.purgeScope('s', { batchSize: 1e9 })).rejects.toBeInstanceOf(InvalidOptionsError);
    await expect(store.countByState('s', { nope: 1 } as never)).rejects.toBeInstanceOf(InvalidOptionsError);
    await expect(store.list('')).rejects.toBeInstanceOf(TypeError);
  });

  it('rejects with StoreUnavailableError when Redis cannot be reached', async () => {
    // A client that never connected, as the RedisStore docs recommend for fail-fast: no offline queue.
    const offline = new Redis(`redis://127.0.0.1:${await freePort()}`, { lazyConnect: true, enableOfflineQueue: false, retryStrategy: () => null });
    offline.on('error', () => {});
    const unreachable = new RedisStore({ client: offline, prefix });
    try {
      await expect(unreachable.inspect('s', 'a')).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(unreachable.list('s')).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(unreachable.purgeScope('s')).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(unreachable.countByState('s')).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(unreachable.purge('s', 'a')).rejects.toBeInstanceOf(StoreUnavailableError);
    } finally {
      offline.disconnect();
    }
  });
});

describe.skipIf(!findRedisServerBinary())('AdminStore on a Redis Cluster', () => {
  let cluster: LocalRedisCluster;
  let clusterClient: Cluster;
  let clusterStore: RedisStore;

  beforeAll(async () => {
    cluster = await startRedisCluster(3);
    clusterClient = new Cluster(cluster.nodes, { redisOptions: { maxRetriesPerRequest: 1 }, lazyConnect: true });
    clusterClient.on('error', () => {});
    await clusterClient.connect();
    clusterStore = new RedisStore({ client: clusterClient, prefix: randomPrefix() });
  });
  afterAll(async () => {
    clusterClient?.disconnect();
    await cluster?.stop();
  });

  it('lists, counts and purges each scope on the master that serves its slot', async () => {
    const scopes = Array.from({ length: 8 }, (_, i) => `scope-${i}`);
    for (const scope of scopes) {
      const ids = Array.from({ length: 30 }, (_, i) => `${scope}/${i}`);
      const claims = await clusterStore.claimMany(ids.map((id) => ({ scope, id, leaseMs: LEASE, windowMs: WINDOW })));
      await clusterStore.completeMany(claims.map((c, i) => ({ scope, id: ids[i]!, token: c.status === 'acquired' ? c.token : -1, windowMs: WINDOW })));
    }
    const sizes = await Promise.all(clusterClient.nodes('master').map((node) => node.dbsize()));
    expect(sizes.filter((n) => n > 0).length).toBeGreaterThan(1);

    for (const scope of scopes) {
      const ids: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await clusterStore.list(scope, { limit: 11, batchSize: 5, ...(cursor ? { cursor } : {}) });
        ids.push(...page.entries.map((e) => e.id!));
        cursor = page.cursor;
      } while (cursor);
      expect(ids.sort()).toEqual(Array.from({ length: 30 }, (_, i) => `${scope}/${i}`).sort());
      expect(await clusterStore.countByState(scope)).toMatchObject({ completed: 30, total: 30 });
      expect(await clusterStore.inspect(scope, `${scope}/3`)).toMatchObject({ state: 'completed' });
    }
    expect(await clusterStore.purge('scope-0', 'scope-0/0')).toBe(true);
    expect(await clusterStore.purgeScope('scope-1', { batchSize: 7 })).toMatchObject({ records: 30 });
    expect((await clusterStore.countByState('scope-1')).total).toBe(0);
    expect((await clusterStore.countByState('scope-0')).total).toBe(29);
    expect((await clusterStore.countByState('scope-2')).total).toBe(30);
  });
});
