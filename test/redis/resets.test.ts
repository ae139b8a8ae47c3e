// Store amnesia: Redis forgets a scope (restart without persistence, FLUSHALL) and the store reports
// it, once per scope, to its listeners and to the processor (`store-reset` event, `storeResets`
// counter, `onStoreReset: { failClosedMs }`). A throwaway server per file: FLUSHALL must not touch
// the Redis other tests share.
import { DedupProcessor, type StoreResetEvent } from '@onceonly/core';
import { RedisStore } from '@onceonly/redis';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { connectRedis, startRedisServer, type LocalRedis } from '../support/redis-server.js';
import { randomPrefix } from './redis-test-context.js';

const LEASE = 30_000;
const WINDOW = 60_000;

let server: LocalRedis;
let client: Redis;
let prefix: string;

beforeAll(async () => {
  server = await startRedisServer();
  client = await connectRedis(server.url);
});
afterAll(async () => {
  client?.disconnect();
  await server?.stop();
});
beforeEach(() => {
  prefix = randomPrefix();
});

const request = (scope: string, id: string) => ({ scope, id, leaseMs: LEASE, windowMs: WINDOW });

function listen(store: RedisStore): StoreResetEvent[] {
  const events: StoreResetEvent[] = [];
  store.onReset((event) => events.push(event));
  return events;
}

describe('the Redis store after Redis forgot a scope', () => {
  it('reports a FLUSHALL once per scope, on the next claim, whatever the claim found', async () => {
    const store = new RedisStore({ client, prefix });
    const events = listen(store);
    await store.claim(request('a', '1'));
    await store.claimMany([request('b', '1'), request('c', '1')]);
    const epochA = await client.get(store.epochKeyOf('a'));
    expect(events).toEqual([]);

    await client.flushall();
    expect((await store.claim(request('a', '1'))).status).toBe('acquired'); // the record is gone too
    expect(events).toEqual([{ scope: 'a', reason: 'missing', previousEpoch: epochA, epoch: await client.get(store.epochKeyOf('a')) }]);
    await store.claim(request('a', '2'));
    expect(events).toHaveLength(1);

    // A batch over two scopes: each reports once.
    await store.claimMany([request('b', '2'), request('c', '2'), request('b', '3')]);
    expect(events.map((e) => e.scope).sort()).toEqual(['a', 'b', 'c']);
    await store.claimMany([request('b', '4'), request('c', '4')]);
    expect(events).toHaveLength(3);
  });

  it('reports another epoch than the one it saw (another worker claimed first after the loss)', async () => {
    const first = new RedisStore({ client, prefix });
    const second = new RedisStore({ client, prefix });
    const events = listen(first);
    const secondEvents = listen(second);
    await first.claim(request('s', '1'));
    await second.claim(request('s', '2')); // sees the same epoch: nothing to report
    const before = await client.get(first.epochKeyOf('s'));

    await client.flushall();
    await second.claim(request('s', '3')); // writes a new epoch
    const after = await client.get(first.epochKeyOf('s'));
    expect(after).not.toBe(before);
    expect(secondEvents).toEqual([{ scope: 's', reason: 'missing', previousEpoch: before, epoch: after }]);
    // The marked batch claim checks the epoch too.
    await first.claimManyMarked({ scope: 's', name: 't:0' }, [{ ...request('s', '4'), position: 1 }], true);
    expect(events).toEqual([{ scope: 's', reason: 'changed', previousEpoch: before, epoch: after }]);
  });

  it('cannot tell a loss from a fresh scope in a store that never saw the epoch', async () => {
    const store = new RedisStore({ client, prefix });
    const events = listen(store);
    await store.claim(request('fresh', '1'));
    expect(events).toEqual([]);
  });

  it('reports nothing when an unrelated key goes, or the records go but the epoch stays', async () => {
    const store = new RedisStore({ client, prefix });
    const events = listen(store);
    const claim = await store.claim(request('k', '1'));
    await client.del(store.keyOf('k', '1'));
    await store.claim(request('k', '1'));
    expect(claim.status).toBe('acquired');
    expect(events).toEqual([]);
  });

  it('keeps a listener that throws from failing the claim, and stops calling one that unsubscribed', async () => {
    const store = new RedisStore({ client, prefix });
    store.onReset(() => {
      throw new Error('listener bug');
    });
    const events: StoreResetEvent[] = [];
    const off = store.onReset((event) => events.push(event));
    await store.claim(request('l', '1'));
    await client.flushall();
    expect((await store.claim(request('l', '2'))).status).toBe('acquired');
    expect(events).toHaveLength(1);
    off();
    await client.flushall();
    await store.claim(request('l', '3'));
    expect(events).toHaveLength(1);
  });
});

describe('the processor after Redis forgot its scope', () => {
  it('emits store-reset once and counts it; by default it carries on', async () => {
    const store = new RedisStore({ client, prefix });
    const processor = new DedupProcessor({ scope: 'jobs', store, leaseMs: 1_000, windowMs: WINDOW });
    const resets: unknown[] = [];
    processor.on('store-reset', (event) => resets.push(event));
    expect((await processor.process({ id: 'a' }, () => 'ran')).status).toBe('processed');
    await client.flushall();
    // The record is gone: a redelivery runs again. That is what the event is there to say.
    expect((await processor.process({ id: 'a' }, () => 'again')).status).toBe('processed');
    expect(resets).toEqual([expect.objectContaining({ scope: 'jobs', reason: 'missing' })]);
    expect(processor.stats().storeResets).toBe(1);
    expect((await processor.process({ id: 'b' }, () => 'ran')).status).toBe('processed');
    expect(processor.stats().storeResets).toBe(1);
    await processor.close();
  });

  it('with failClosedMs, answers store-unavailable for that long (single and batch), releases what the detecting claim took, then recovers', async () => {
    const store = new RedisStore({ client, prefix });
    const processor = new DedupProcessor({ scope: 'jobs', store, leaseMs: 1_000, windowMs: WINDOW, onStoreReset: { failClosedMs: 600 } });
    const resets: { failClosedUntil?: number }[] = [];
    processor.on('store-reset', (event) => resets.push(event));
    let runs = 0;
    const handler = () => ++runs;
    expect((await processor.process({ id: 'a' }, handler)).status).toBe('processed');
    await client.flushall();

    const started = Date.now();
    const detected = await processor.process({ id: 'x' }, handler);
    expect(detected.status).toBe('store-unavailable');
    expect(resets).toHaveLength(1);
    expect(resets[0]!.failClosedUntil).toBeGreaterThanOrEqual(started + 600);
    // The claim that noticed was given back: a tombstone, absent to readers.
    expect(await store.get('jobs', 'x')).toBeUndefined();
    expect((await processor.process({ id: 'y' }, handler)).status).toBe('store-unavailable');
    const batch = await processor.processBatch([{ id: 'p' }, { id: 'q' }], handler);
    expect(batch.done).toBe(0);
    expect(batch.outcomes[0]!.status).toBe('store-unavailable');
    expect(runs).toBe(1);

    await new Promise((resolve) => setTimeout(resolve, resets[0]!.failClosedUntil! - Date.now() + 20));
    expect((await processor.process({ id: 'x' }, handler)).status).toBe('processed');
    expect((await processor.processBatch([{ id: 'p' }, { id: 'q' }], handler)).done).toBe(2);
    expect(processor.stats().storeResets).toBe(1);
    await processor.close();
  });

  it('detects a real restart without persistence on the same port, then recovers', async () => {
    const own = await startRedisServer();
    let restarted: LocalRedis | undefined;
    const worker = await connectRedis(own.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 });
    try {
      const store = new RedisStore({ client: worker, prefix });
      const processor = new DedupProcessor({ scope: 'jobs', store, leaseMs: 1_000, windowMs: WINDOW, onStoreReset: { failClosedMs: 300 } });
      const resets: unknown[] = [];
      processor.on('store-reset', (event) => resets.push(event));
      expect((await processor.process({ id: 'a' }, () => 1)).status).toBe('processed');

      const closed = new Promise((resolve) => worker.once('close', resolve));
      await own.kill();
      await closed;
      restarted = await startRedisServer({ port: own.port });
      if (worker.status !== 'ready') await new Promise((resolve) => worker.once('ready', resolve));

      expect((await processor.process({ id: 'b' }, () => 1)).status).toBe('store-unavailable');
      expect(resets).toEqual([expect.objectContaining({ scope: 'jobs', reason: 'missing' })]);
      await new Promise((resolve) => setTimeout(resolve, 350));
      expect((await processor.process({ id: 'b' }, () => 1)).status).toBe('processed');
      expect(processor.stats().storeResets).toBe(1);
      await processor.close();
    } finally {
      worker.disconnect();
      await restarted?.stop();
      await own.stop();
    }
  });
});
