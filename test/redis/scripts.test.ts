// Script registration: once per connection under versioned names, EVALSHA with reload after NOSCRIPT.
import { readdirSync, readFileSync } from 'node:fs';
import { RedisStore, SCRIPT_VERSION } from '@onceonly/redis';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { connectSharedRedis, deleteUnder, randomPrefix } from './redis-test-context.js';

const scriptsDir = new URL('../../packages/redis/src/scripts/', import.meta.url);
const COMMANDS = [
  'claim',
  'claim_many',
  'extend',
  'extend_many',
  'complete',
  'complete_many',
  'release',
  'release_many',
  'fail',
  'get',
  'claim_many_marked',
  'complete_many_marked',
].map((name) => `onceonly_${name}_v${SCRIPT_VERSION}`);

let client: Redis;
let prefix: string;

beforeEach(async () => {
  client = await connectSharedRedis();
  prefix = randomPrefix();
});
afterEach(async () => {
  await deleteUnder(client, prefix);
  client.disconnect();
});

describe('script registration', () => {
  it('defines every script once per connection under a versioned name', async () => {
    const define = vi.spyOn(client, 'defineCommand');
    new RedisStore({ client, prefix });
    expect(define.mock.calls.map(([name]) => name).sort()).toEqual([...COMMANDS].sort());
    for (const name of COMMANDS) expect(typeof (client as unknown as Record<string, unknown>)[name]).toBe('function');

    define.mockClear();
    const second = new RedisStore({ client, prefix: `${prefix}:second` });
    expect(define).not.toHaveBeenCalled();
    expect((await second.claim({ scope: 's', id: '1', leaseMs: 1000, windowMs: 1000 })).status).toBe('acquired');
    await deleteUnder(client, `${prefix}:second`);

    const other = await connectSharedRedis();
    try {
      const defineOther = vi.spyOn(other, 'defineCommand');
      new RedisStore({ client: other, prefix });
      expect(defineOther).toHaveBeenCalledTimes(COMMANDS.length);
    } finally {
      other.disconnect();
    }
  });

  it('recovers from SCRIPT FLUSH (NOSCRIPT) on single, batch and pipelined calls', async () => {
    const store = new RedisStore({ client, prefix });
    const claim = (scope: string, id: string) => ({ scope, id, leaseMs: 5000, windowMs: 5000 });
    expect((await store.claim(claim('s', 'a'))).status).toBe('acquired');
    expect((await store.claimMany([claim('s', 'b')]))[0]!.status).toBe('acquired');

    const admin = await connectSharedRedis();
    try {
      // Flushing the script cache of the shared server may make other connections reload theirs too:
      // that is exactly what ioredis does on NOSCRIPT.
      await admin.script('FLUSH');
      expect((await store.claim(claim('s', 'c'))).status).toBe('acquired');
      await admin.script('FLUSH');
      expect((await store.claimMany([claim('s', 'd'), claim('s', 'e')])).map((r) => r.status)).toEqual([
        'acquired',
        'acquired',
      ]);
      await admin.script('FLUSH');
      // Several scopes: one pipeline of script calls.
      expect((await store.claimMany([claim('s', 'f'), claim('t', 'f')])).map((r) => r.status)).toEqual([
        'acquired',
        'acquired',
      ]);
      await admin.script('FLUSH');
      expect(await store.get('s', 'a')).toMatchObject({ state: 'in-progress' });
    } finally {
      admin.disconnect();
    }
  });
});

describe('script files', () => {
  const files = readdirSync(scriptsDir).filter((f) => f.endsWith('.lua'));

  it('are named <name>-<numKeys>.lua and open with a KEYS / ARGV / output header', () => {
    expect(files.length).toBeGreaterThanOrEqual(COMMANDS.length);
    for (const file of files) {
      expect(file).toMatch(/^[a-z]+(-[a-z]+)*-(\d+|n)\.lua$/);
      const text = readFileSync(new URL(file, scriptsDir), 'utf8');
      const header = text.slice(0, text.indexOf(']]'));
      expect(header.startsWith('--[['), file).toBe(true);
      expect(header, file).toMatch(/KEYS\[1/);
      expect(header, file).toMatch(/Output/);
      if (!file.startsWith('get-')) expect(header, file).toMatch(/ARGV/);
    }
  });
});
