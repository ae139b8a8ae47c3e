// The AdminStore capability of the Redis store on a real Redis: the shared admin suite
// (test/conformance/admin-conformance.ts), then what is Redis's own: hashed IDs listed by their key
// part, SCAN pagination (never KEYS), the scope's epoch left by a purge, and a Redis Cluster.
import { type AdminEntry } from '@onceonly/core';
import { encodeKeyPart, HASHED_MARKER, RedisStore } from '@onceonly/redis';
import { Cluster, Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { hostile } from '../../packages/redis/test/hostile-ids.js';
import { describeAdminConformance } from '../conformance/admin-conformance.js';
import { HOSTILE_IDS } from '../conformance/store-conformance.js';
import { findRedisServerBinary, freePort, startRedisCluster, type LocalRedisCluster } from '../support/redis-server.js';
import { connectSharedRedis, deleteUnder, expireLease, keysUnder, randomPrefix } from './redis-test-context.js';

const WINDOW = 60_000;
const LEASE = 30_000;

let client: Redis;
let prefix: string;
let store: RedisStore;
const prefixes: string[] = [];

beforeAll(async () => {
  client = await connectSharedRedis();
});
afterAll(async () => {
  for (const used of prefixes.splice(0)) await deleteUnder(client, used);
  client.disconnect();
});
beforeEach(() => {
  prefix = randomPrefix();
  store = new RedisStore({ client, prefix });
});
afterEach(async () => {
  await deleteUnder(client, prefix);
});

describeAdminConformance('redis', () => ({
  store: async () => {
    const own = randomPrefix();
    prefixes.push(own);
    return new RedisStore({ client, prefix: own });
  },
  unreachable: async () => {
    // A client that never connected, as the RedisStore docs recommend for fail-fast: no offline queue.
    const offline = new Redis(`redis://127.0.0.1:${await freePort()}`, { lazyConnect: true, enableOfflineQueue: false, retryStrategy: () => null });
    offline.on('error', () => {});
    return { store: new RedisStore({ client: offline, prefix: randomPrefix() }), close: async () => offline.disconnect() };
  },
  hostileIds: hostile,
  entryOf: (id) => {
    const keyPart = encodeKeyPart(id);
    return keyPart.startsWith(HASHED_MARKER) ? { keyPart } : { id, keyPart };
  },
  expireLease: (s, scope, id) => expireLease(client, (s as RedisStore).keyOf(scope, id)),
  // A key whose expiry is in the past is gone, as Redis expires it.
  expireRecord: async (s, scope, id) => {
    expect(await client.pexpireat((s as RedisStore).keyOf(scope, id), 1)).toBe(1);
  },
}));

async function acquire(scope: string, id: string): Promise<number> {
  const result = await store.claim({ scope, id, leaseMs: LEASE, windowMs: WINDOW });
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
async function listAll(scope: string, options: { limit?: number; batchSize?: number } = {}) {
  const entries: AdminEntry[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.list(scope, { ...options, ...(cursor ? { cursor } : {}) });
    entries.push(...page.entries);
    cursor = page.cursor;
  } while (cursor !== undefined);
  return entries;
}

describe('RedisStore as an AdminStore', () => {
  it('lists hashed IDs by their key part only (no id), and inspect/purge still reach them by ID', async () => {
    const ids = [...new Set([...HOSTILE_IDS, ...hostile])];
    const hashed = ids.filter((id) => encodeKeyPart(id).startsWith(HASHED_MARKER));
    expect(hashed.length).toBeGreaterThan(3);
    await completed('h', ids);
    const entries = await listAll('h', { limit: 7, batchSize: 5 });
    expect(new Set(entries.filter((e) => e.id === undefined).map((e) => e.keyPart))).toEqual(new Set(hashed.map(encodeKeyPart)));
    for (const entry of entries) if (entry.id !== undefined) expect(entry.keyPart).toBe(encodeKeyPart(entry.id));
    for (const id of hashed) expect(await store.purge('h', id), JSON.stringify(id)).toBe(true);
    expect((await listAll('h')).every((e) => e.id !== undefined)).toBe(true);
  });

  it('marks an expired lease 1 ms after the epoch, as the test helper wrote it', async () => {
    await acquire('s', 'stuck');
    await expireLease(client, store.keyOf('s', 'stuck'));
    expect(await store.inspect('s', 'stuck')).toMatchObject({ state: 'in-progress', leaseExpired: true, leaseUntil: 1 });
  });

  it('pages with several SCAN steps per page, and never uses KEYS', async () => {
    const ids = Array.from({ length: 150 }, (_, i) => `id-${i}`);
    await completed('big', ids);
    const scan = vi.spyOn(client, 'scan');
    const keys = vi.spyOn(client, 'keys');
    try {
      const first = await store.list('big', { limit: 40, batchSize: 10 });
      expect(first.entries).toHaveLength(40);
      expect(first.cursor).toBeDefined();
      expect(scan.mock.calls.length).toBeGreaterThan(1);
      await store.countByState('big');
      await store.purgeScope('big', { dryRun: true });
      await store.purgeScope('big');
      expect(keys).not.toHaveBeenCalled();
    } finally {
      scan.mockRestore();
      keys.mockRestore();
    }
  });

  it("leaves the scope's epoch when it purges the scope", async () => {
    await completed('gone', Array.from({ length: 30 }, (_, i) => `r${i}`));
    await completed('gone:a', ['r1']);
    expect(await store.purgeScope('gone', { batchSize: 7, includeMarks: true })).toMatchObject({ records: 30 });
    const left = await keysUnder(client, prefix);
    expect(left.filter((key) => !key.endsWith(':!epoch')).length).toBe(1); // gone:a
    // Removing the epoch would make every store that claims here report a reset.
    expect(left).toContain(store.epochKeyOf('gone'));
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
