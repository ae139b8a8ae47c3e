// Shared helpers of the Redis store tests: a connected client for the run's Redis, a random key
// prefix per test, and cleanup of every key under it.
import { randomBytes } from 'node:crypto';
import type { Redis, RedisOptions } from 'ioredis';
import { inject } from 'vitest';
import { connectRedis } from '../support/redis-server.js';

/** A client for the shared test Redis (`inject('redisUrl')`). Quit it after use. */
export function connectSharedRedis(options?: RedisOptions): Promise<Redis> {
  return connectRedis(inject('redisUrl'), options);
}

/** A prefix no other test uses. */
export function randomPrefix(): string {
  return `onceonly-test:${randomBytes(8).toString('hex')}`;
}

/** Every key under `prefix`. */
export async function keysUnder(client: Redis, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return keys;
}

/** Deletes every key under `prefix`. */
export async function deleteUnder(client: Redis, prefix: string): Promise<void> {
  const keys = await keysUnder(client, prefix);
  if (keys.length > 0) await client.unlink(...keys);
}

/** The Redis Cluster hash tag of a key: between the first `{` and the first `}` after it. */
export function hashTag(key: string): string | undefined {
  const open = key.indexOf('{');
  if (open < 0) return undefined;
  const close = key.indexOf('}', open + 1);
  if (close <= open + 1) return undefined;
  return key.slice(open + 1, close);
}
