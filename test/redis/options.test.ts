import { InvalidOptionsError } from '@onceonly/core';
import { RedisStore, type RedisStoreOptions } from '@onceonly/redis';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectSharedRedis } from './redis-test-context.js';

let client: Redis;
beforeAll(async () => {
  client = await connectSharedRedis();
});
afterAll(() => client.disconnect());

function optionError(options: unknown): InvalidOptionsError {
  try {
    new RedisStore(options as RedisStoreOptions);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidOptionsError);
    return error as InvalidOptionsError;
  }
  throw new Error('expected the constructor to throw');
}

describe('RedisStore options', () => {
  it('defaults the prefix to "onceonly"', () => {
    expect(new RedisStore({ client }).keyOf('s', 'i')).toBe('onceonly:{s}:i');
  });

  it('names the option that is wrong', () => {
    expect(optionError(undefined).message).toMatch(/^RedisStore option "options"/);
    expect(optionError({}).message).toBe('RedisStore option "client" must be an ioredis Redis or Cluster client');
    expect(optionError({ client: { get: () => 1 } }).message).toMatch(/"client"/);
    expect(optionError({ client, prefix: 7 }).message).toMatch(/^RedisStore option "prefix"/);
    expect(optionError({ client, prefix: 'a{b}' }).message).toMatch(/"prefix" must not contain "\{" or "\}"/);
    expect(optionError({ client, prefix: 'a*' }).message).toMatch(/"prefix" must not contain glob characters/);
    expect(optionError({ client, prefix: '' }).message).toMatch(/"prefix" must not be empty/);
    expect(optionError({ client, prefix: 'a b' }).message).toMatch(/"prefix" must be printable ASCII/);
    expect(optionError({ client, prefix: 'x'.repeat(65) }).message).toMatch(/"prefix" must be at most 64/);
    expect(optionError({ client, prefx: 'typo' }).message).toBe('RedisStore option "prefx" is not a RedisStore option');
  });

  it('reports invalid options as not retriable, with a stable code', () => {
    expect(optionError({})).toMatchObject({ code: 'INVALID_OPTIONS', retriable: false });
  });
});
