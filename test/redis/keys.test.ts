import { RedisStore, encodeKeyPart, MAX_PART_LENGTH } from '@onceonly/redis';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostile, long } from '../../packages/redis/test/hostile-ids.js';
import { connectSharedRedis, deleteUnder, hashTag, keysUnder, randomPrefix } from './redis-test-context.js';

// Hostile IDs (see packages/redis/test/keys.test.ts for the pure encoding tests) in a real Redis.
describe('keys in Redis', () => {
  let client: Redis;
  let prefix: string;

  beforeAll(async () => {
    client = await connectSharedRedis();
    prefix = randomPrefix();
  });
  afterAll(async () => {
    await deleteUnder(client, prefix);
    client.disconnect();
  });

  it('gives every hostile (scope, ID) its own bounded key under the prefix, one hash tag per scope', async () => {
    const store = new RedisStore({ client, prefix });
    const scopes = ['s', 's:x', 's}', '{s', 'ü', long(500)];
    const requests = scopes
      .flatMap((scope) => hostile.map((id) => ({ scope, id })))
      .map((r, i) => ({ ...r, fingerprint: `fp-${i}`, leaseMs: 30_000, windowMs: 60_000 }));
    const results = await store.claimMany(requests);
    expect(results.every((r) => r.status === 'acquired')).toBe(true);

    const keys = await keysUnder(client, prefix);
    // One record per request, and one epoch key per scope.
    expect(keys).toHaveLength(requests.length + scopes.length);
    expect(keys.filter((key) => key.endsWith(':!epoch')).sort()).toEqual(scopes.map((scope) => store.epochKeyOf(scope)).sort());
    for (const key of keys) {
      expect(key.startsWith(`${prefix}:{`)).toBe(true);
      expect(Buffer.byteLength(key)).toBeLessThanOrEqual(prefix.length + 2 * MAX_PART_LENGTH + 4);
    }
    // Each record holds its own fingerprint: no two requests shared a key.
    for (const request of requests) {
      expect((await store.get(request.scope, request.id))?.fingerprint).toBe(request.fingerprint);
    }
    for (const scope of scopes) {
      const tags = new Set(hostile.map((id) => hashTag(store.keyOf(scope, id))));
      expect(tags.size).toBe(1);
      expect([...tags][0]).toBe(encodeKeyPart(scope));
    }
  });

  it('never lets scope and ID trade characters', () => {
    const store = new RedisStore({ client, prefix });
    expect(store.keyOf('a', 'b:c')).not.toBe(store.keyOf('a:b', 'c'));
    expect(store.keyOf('a}:{b', 'c')).not.toBe(store.keyOf('a', 'b}:c'));
    expect(store.keyOf('a', 'b')).toBe(`${prefix}:{a}:b`);
  });

  it('rejects an empty scope or ID before sending anything', async () => {
    const store = new RedisStore({ client, prefix });
    await expect(store.claim({ scope: '', id: 'x', leaseMs: 1000, windowMs: 1000 })).rejects.toThrow(TypeError);
    await expect(store.claim({ scope: 's', id: '', leaseMs: 1000, windowMs: 1000 })).rejects.toMatchObject({
      code: 'ID_MISSING',
    });
    await expect(
      store.claimMany([
        { scope: 's', id: 'ok', leaseMs: 1000, windowMs: 1000 },
        { scope: 's', id: 'bad', leaseMs: 0, windowMs: 1000 },
      ]),
    ).rejects.toThrow(/leaseMs must be a positive number/);
    expect(await store.get('s', 'ok')).toBeUndefined();
  });
});
