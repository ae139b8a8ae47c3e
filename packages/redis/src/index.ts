/**
 * `@onceonly/redis`: the Redis store for onceonly (ioredis, standalone or Cluster).
 *
 * @example
 * import { Redis } from 'ioredis';
 * import { RedisStore } from '@onceonly/redis';
 *
 * const client = new Redis(process.env.REDIS_URL!, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true });
 * await client.connect();
 * const store = new RedisStore({ client, prefix: 'myapp' });
 *
 * @packageDocumentation
 */
export { RedisStore } from './redis-store.js';
export type { RedisStoreClient, RedisStoreOptions } from './redis-store-options.js';
export { decodeKeyPart, encodeKeyPart, HASHED_MARKER, MAX_PART_LENGTH, MAX_PREFIX_LENGTH } from './keys.js';
export { SCRIPT_VERSION } from './scripts.js';
