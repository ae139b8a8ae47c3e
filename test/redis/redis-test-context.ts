// Shared helpers of the Redis store tests: a connected client for the run's Redis, a random key
// prefix per test, and cleanup of every key under it.
import { randomBytes } from 'node:crypto';
import type { Redis, RedisOptions } from 'ioredis';
import { inject } from 'vitest';
import { decodeRecordValue, encodeRecordValue, type StoredRecord } from '../../packages/redis/src/record-value.js';
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

/** The record stored at `key` (either layout is answered as the scripts read it), or undefined. */
export async function storedRecord(client: Redis, key: string): Promise<StoredRecord | undefined> {
  const value = await client.getBuffer(key);
  return value === null ? undefined : decodeRecordValue(value);
}

/**
 * Makes a lease look expired without waiting: the record's lease end moves into the past (1 ms after
 * the epoch), its key and expiry stay.
 */
export async function expireLease(client: Redis, key: string): Promise<void> {
  const record = await storedRecord(client, key);
  if (record?.state !== 1) throw new Error(`expireLease: ${key} holds no in-progress record`);
  await client.set(key, encodeRecordValue({ ...record, leaseUntil: 1 }), 'KEEPTTL');
}

/** Fields of a record as onceonly 0.1 (script version 2) kept it: a hash. */
export interface LegacyFields {
  s: '0' | '1' | '2' | '3';
  t: string;
  c: string;
  u: string;
  l?: string;
  f?: string;
  r?: string;
  e?: string;
  x?: '1';
}

/** Writes a record in the 0.1 layout (a hash with these fields), kept `ttlMs`. */
export async function writeLegacyRecord(client: Redis, key: string, fields: LegacyFields, ttlMs: number): Promise<void> {
  await client.del(key);
  await client.hset(key, fields as unknown as Record<string, string>);
  await client.pexpire(key, ttlMs);
}
