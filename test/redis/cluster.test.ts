// The store on a real Redis Cluster (three masters from the local redis-server binary): a batch of one
// scope is one script call on one shard (its keys share the scope's hash tag), a batch of several
// scopes is split per scope and routed to each scope's node.
import { RedisStore } from '@onceonly/redis';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findRedisServerBinary, startRedisCluster, type LocalRedisCluster } from '../support/redis-server.js';
import { randomPrefix } from './redis-test-context.js';

const WINDOW = 60_000;
const LEASE = 30_000;

describe.skipIf(!findRedisServerBinary())('Redis Cluster', () => {
  let cluster: LocalRedisCluster;
  let client: Cluster;
  let store: RedisStore;

  beforeAll(async () => {
    cluster = await startRedisCluster(3);
    client = new Cluster(cluster.nodes, { redisOptions: { maxRetriesPerRequest: 1 }, lazyConnect: true });
    client.on('error', () => {});
    await client.connect();
    store = new RedisStore({ client, prefix: randomPrefix() });
  });
  afterAll(async () => {
    client?.disconnect();
    await cluster?.stop();
  });

  const scopes = Array.from({ length: 12 }, (_, i) => `scope-${i}`).concat(['a:{b}', 'x'.repeat(300)]);

  it('claims, extends and completes a batch of one scope in one script call', async () => {
    const requests = Array.from({ length: 100 }, (_, i) => ({ scope: 'orders', id: `o-${i}`, leaseMs: LEASE, windowMs: WINDOW }));
    const claimed = await store.claimMany(requests);
    expect(claimed.every((r) => r.status === 'acquired')).toBe(true);
    const refs = claimed.map((r, i) => ({ scope: 'orders', id: `o-${i}`, token: r.status === 'acquired' ? r.token : 0 }));
    expect(new Set(await store.extendMany(refs.map((r) => ({ ...r, leaseMs: LEASE }))))).toEqual(new Set(['ok']));
    expect(new Set(await store.completeMany(refs.map((r) => ({ ...r, result: r.id, windowMs: WINDOW }))))).toEqual(
      new Set(['ok']),
    );
    expect(await store.get('orders', 'o-42')).toMatchObject({ state: 'completed', result: 'o-42' });
  });

  it('splits a batch of many scopes per scope, across shards, and answers in request order', async () => {
    const requests = scopes.flatMap((scope) =>
      [0, 1, 2].map((i) => ({ scope, id: `id-${i}`, fingerprint: `${scope.slice(0, 20)}/${i}`, leaseMs: LEASE, windowMs: WINDOW })),
    );
    const claimed = await store.claimMany(requests);
    expect(claimed.every((r) => r.status === 'acquired')).toBe(true);

    // The records really are spread over more than one master.
    const sizes = await Promise.all(client.nodes('master').map((node) => node.dbsize()));
    expect(sizes.filter((n) => n > 0).length).toBeGreaterThan(1);

    const again = await store.claimMany(requests);
    again.forEach((r, i) => expect(r).toMatchObject({ status: 'in-progress', record: { fingerprint: requests[i]!.fingerprint } }));

    const refs = claimed.map((r, i) => ({ scope: requests[i]!.scope, id: requests[i]!.id, token: r.status === 'acquired' ? r.token : 0 }));
    const half = refs.length / 2;
    expect(new Set(await store.releaseMany(refs.slice(0, half)))).toEqual(new Set(['ok']));
    expect(new Set(await store.completeMany(refs.slice(half).map((r) => ({ ...r, windowMs: WINDOW }))))).toEqual(
      new Set(['ok']),
    );
    const after = await store.claimMany(requests);
    after.forEach((r, i) => {
      if (i < half) expect(r).toMatchObject({ status: 'acquired', token: refs[i]!.token + 1 });
      else expect(r.status).toBe('completed');
    });
  });

  it('keeps the epoch of each scope in the hash slot of the scope, and reports a FLUSHALL of every node', async () => {
    const events: { scope: string; reason: string }[] = [];
    const watched = new RedisStore({ client, prefix: store.keyOf('x', 'y').split(':{')[0]! });
    watched.onReset((event) => events.push(event));
    const requests = scopes.map((scope) => ({ scope, id: 'epoch', leaseMs: LEASE, windowMs: WINDOW }));
    expect((await watched.claimMany(requests)).every((r) => r.status === 'acquired')).toBe(true);
    for (const scope of scopes) {
      const [epochSlot, recordSlot] = await Promise.all([
        client.call('CLUSTER', 'KEYSLOT', watched.epochKeyOf(scope)),
        client.call('CLUSTER', 'KEYSLOT', watched.keyOf(scope, 'epoch')),
      ]);
      expect(epochSlot).toBe(recordSlot);
    }
    await Promise.all(client.nodes('master').map((node) => node.flushall()));
    await watched.claimMany(requests);
    expect(events.map((e) => e.scope).sort()).toEqual([...scopes].sort());
    expect(new Set(events.map((e) => e.reason))).toEqual(new Set(['missing']));
  });

  it('reloads scripts on every node after SCRIPT FLUSH', async () => {
    await Promise.all(client.nodes('master').map((node) => node.script('FLUSH')));
    const results = await store.claimMany(scopes.map((scope) => ({ scope, id: 'flushed', leaseMs: LEASE, windowMs: WINDOW })));
    expect(results.every((r) => r.status === 'acquired')).toBe(true);
  });
});
