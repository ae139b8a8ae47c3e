// Fail-closed: when Redis cannot be reached or refuses a write, every call rejects with a retriable
// StoreUnavailableError, its message holds no payload, and nothing is written (nor written later).
// Each test runs its own throwaway server, which it stops or reconfigures.
import { OnceOnlyError, StoreUnavailableError } from '@onceonly/core';
import { RedisStore } from '@onceonly/redis';
import type { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { connectRedis, startRedisServer, type LocalRedis } from '../support/redis-server.js';
import { randomPrefix } from './redis-test-context.js';

const SECRET = 'secret-payload-4f1c';
const cleanup: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

async function throwaway(): Promise<LocalRedis> {
  const server = await startRedisServer();
  cleanup.push(() => server.stop());
  return server;
}

/** A client configured as the RedisStore docs recommend for fail-fast. */
async function failFastClient(url: string): Promise<Redis> {
  const client = await connectRedis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    retryStrategy: () => 50,
  });
  cleanup.push(() => client.disconnect());
  return client;
}

function once(client: Redis, event: 'close' | 'ready'): Promise<void> {
  return new Promise((resolve) => client.once(event, () => resolve()));
}

async function expectUnavailable(promise: Promise<unknown>): Promise<StoreUnavailableError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(StoreUnavailableError);
  expect(error).toBeInstanceOf(OnceOnlyError);
  const unavailable = error as StoreUnavailableError;
  expect(unavailable).toMatchObject({ code: 'STORE_UNAVAILABLE', retriable: true, name: 'StoreUnavailableError' });
  expect(unavailable.cause).toBeInstanceOf(Error);
  expect(unavailable.message).not.toContain(SECRET);
  return unavailable;
}

const claim = (scope: string, id: string) => ({ scope, id, fingerprint: SECRET, leaseMs: 30_000, windowMs: 60_000 });

describe('Redis down', () => {
  it('rejects every call fast with StoreUnavailableError, and nothing is written when Redis comes back', async () => {
    const server = await throwaway();
    const client = await failFastClient(server.url);
    const store = new RedisStore({ client, prefix: randomPrefix() });
    const owned = await store.claim(claim('jobs', 'owned'));
    expect(owned.status).toBe('acquired');
    const token = owned.status === 'acquired' ? owned.token : 0;

    const closed = once(client, 'close');
    await server.kill();
    await closed;

    const started = Date.now();
    const ref = { scope: 'jobs', id: 'owned', token };
    const errors = [
      await expectUnavailable(store.claim(claim('jobs', SECRET))),
      await expectUnavailable(store.claimMany([claim('jobs', 'a'), claim('jobs', 'b')])),
      await expectUnavailable(store.claimMany([claim('jobs', 'a'), claim('other', 'b')])),
      await expectUnavailable(store.extend({ ...ref, leaseMs: 1000 })),
      await expectUnavailable(store.extendMany([{ ...ref, leaseMs: 1000 }])),
      await expectUnavailable(store.complete({ ...ref, result: SECRET, windowMs: 1000 })),
      await expectUnavailable(store.completeMany([{ ...ref, result: SECRET, windowMs: 1000 }])),
      await expectUnavailable(store.release(ref)),
      await expectUnavailable(store.releaseMany([ref])),
      await expectUnavailable(store.fail({ ...ref, error: 'E', windowMs: 1000 })),
      await expectUnavailable(store.get('jobs', SECRET)),
    ];
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(errors[0]!.message).toMatch(/^Redis store unavailable during claim: /);
    expect(errors[2]!.message).toMatch(/^Redis store unavailable during claimMany: /);

    // Same port, empty server (no persistence): anything found now was replayed by the client.
    const restarted = await startRedisServer({ port: server.port });
    cleanup.push(() => restarted.stop());
    if (client.status !== 'ready') await once(client, 'ready');
    expect(await client.dbsize()).toBe(0);
    expect(await store.get('jobs', 'a')).toBeUndefined();
    expect((await store.claim(claim('jobs', 'a'))).status).toBe('acquired');
  });
});

describe('Redis refusing writes', () => {
  it('maps an error reply (OOM) to StoreUnavailableError with only the error code, and writes nothing', async () => {
    const server = await throwaway();
    const client = await failFastClient(server.url);
    const admin = await connectRedis(server.url);
    cleanup.push(() => admin.disconnect());
    const store = new RedisStore({ client, prefix: randomPrefix() });
    expect((await store.claim(claim('jobs', 'first'))).status).toBe('acquired');

    await admin.config('SET', 'maxmemory', '1');
    const single = await expectUnavailable(store.claim(claim('jobs', SECRET)));
    expect(single.message).toBe('Redis store unavailable during claim: Redis replied with an error (OOM)');
    // The first key of the batch is a duplicate (a read), the rest would write: still nothing written.
    await expectUnavailable(store.claimMany([claim('jobs', 'first'), claim('jobs', 'x'), claim('jobs', 'y')]));
    await admin.config('SET', 'maxmemory', '0');

    expect(await client.dbsize()).toBe(2); // the first record and the scope's epoch
    expect(await store.get('jobs', 'x')).toBeUndefined();
  });
});
