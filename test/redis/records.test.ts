// Record layout, TTLs and fencing in Redis itself. The generic transitions live in the shared
// conformance suite; these tests pin down what is particular to the Redis store.
import { RedisStore } from '@onceonly/redis';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { connectSharedRedis, deleteUnder, randomPrefix } from './redis-test-context.js';

const WINDOW = 60_000;
const LEASE = 5_000;

let client: Redis;
let prefix: string;
let store: RedisStore;

beforeAll(async () => {
  client = await connectSharedRedis();
});
afterAll(() => client.disconnect());
beforeEach(() => {
  prefix = randomPrefix();
  store = new RedisStore({ client, prefix });
});
afterEach(async () => {
  await deleteUnder(client, prefix);
});

async function serverNow(): Promise<number> {
  const [seconds, micros] = await client.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

const claim = (id: string, extra: { leaseMs?: number; windowMs?: number; fingerprint?: string } = {}) =>
  store.claim({ scope: 'jobs', id, leaseMs: LEASE, windowMs: WINDOW, ...extra });

async function acquire(id: string, extra?: Parameters<typeof claim>[1]): Promise<number> {
  const result = await claim(id, extra);
  if (result.status !== 'acquired') throw new Error(`expected acquired, got ${result.status}`);
  return result.token;
}

/** Makes a lease look expired without waiting: the lease end moves into the past, the key stays. */
async function expireLease(id: string): Promise<void> {
  await client.hset(store.keyOf('jobs', id), 'l', '1');
}

describe('record layout', () => {
  it('keeps an in-progress claim as a small hash with the lease judged by server time', async () => {
    const before = await serverNow();
    const result = await claim('a', { fingerprint: 'fp1' });
    const after = await serverNow();
    expect(result.status).toBe('acquired');
    if (result.status !== 'acquired') return;
    expect(result.takeover).toBe(false);
    expect(result.leaseUntil).toBeGreaterThanOrEqual(before + LEASE);
    expect(result.leaseUntil).toBeLessThanOrEqual(after + LEASE);

    const key = store.keyOf('jobs', 'a');
    const hash = await client.hgetall(key);
    expect(Object.keys(hash).sort()).toEqual(['c', 'f', 'l', 's', 't', 'u']);
    expect(hash).toMatchObject({ s: '1', t: String(result.token), f: 'fp1', l: String(result.leaseUntil) });
    const ttl = await client.pttl(key);
    expect(ttl).toBeGreaterThan(WINDOW - 2_000);
    expect(ttl).toBeLessThanOrEqual(WINDOW);
  });

  it('keeps an in-progress record at least for the lease when the lease is longer than the window', async () => {
    await acquire('a', { leaseMs: 30_000, windowMs: 1_000 });
    expect(await client.pttl(store.keyOf('jobs', 'a'))).toBeGreaterThan(28_000);
  });

  it('keeps a completed record for the window from completion, with its result', async () => {
    const token = await acquire('a', { fingerprint: 'fp1' });
    expect(await store.complete({ scope: 'jobs', id: 'a', token, result: '{"n":1}', windowMs: 120_000 })).toBe('ok');
    const key = store.keyOf('jobs', 'a');
    expect(await client.hgetall(key)).toMatchObject({ s: '2', t: String(token), f: 'fp1', r: '{"n":1}' });
    expect(await client.pttl(key)).toBeGreaterThan(118_000);

    const again = await claim('a');
    expect(again).toMatchObject({ status: 'completed', record: { state: 'completed', token, result: '{"n":1}' } });
    if (again.status === 'completed') expect(again.record.leaseUntil).toBeUndefined();
  });

  it('keeps a failed record for the window with its error code', async () => {
    const token = await acquire('a');
    expect(await store.fail({ scope: 'jobs', id: 'a', token, error: 'E_BAD_INPUT', windowMs: 90_000 })).toBe('ok');
    expect(await client.hgetall(store.keyOf('jobs', 'a'))).toMatchObject({ s: '3', e: 'E_BAD_INPUT' });
    expect(await client.pttl(store.keyOf('jobs', 'a'))).toBeGreaterThan(88_000);
    expect(await store.get('jobs', 'a')).toMatchObject({ state: 'failed', error: 'E_BAD_INPUT', token });
  });

  it('keeps the key at least as long as an extended lease', async () => {
    const token = await acquire('a', { leaseMs: 1_000, windowMs: 2_000 });
    expect(await store.extend({ scope: 'jobs', id: 'a', token, leaseMs: 30_000 })).toBe('ok');
    expect(await client.pttl(store.keyOf('jobs', 'a'))).toBeGreaterThan(28_000);
    const record = await store.get('jobs', 'a');
    expect(record?.leaseUntil).toBeGreaterThan((await serverNow()) + 28_000);
  });

  it('stores nothing for a claim that found a live owner', async () => {
    await acquire('a', { fingerprint: 'first' });
    const before = await client.hgetall(store.keyOf('jobs', 'a'));
    const second = await claim('a', { fingerprint: 'second' });
    expect(second).toMatchObject({ status: 'in-progress', record: { fingerprint: 'first' } });
    expect(await client.hgetall(store.keyOf('jobs', 'a'))).toEqual(before);
  });
});

describe('fencing tokens', () => {
  it('survive a release: claim → release → claim gives the next token, and the tombstone reads as absent', async () => {
    const first = await acquire('a', { fingerprint: 'fp1' });
    const key = store.keyOf('jobs', 'a');
    const ttlBefore = await client.pttl(key);
    expect(await store.release({ scope: 'jobs', id: 'a', token: first })).toBe('ok');
    expect(await client.hget(key, 's')).toBe('0');
    expect(await client.hget(key, 't')).toBe(String(first));
    expect(await client.pttl(key)).toBeLessThanOrEqual(ttlBefore);
    expect(await store.get('jobs', 'a')).toBeUndefined();

    const second = await claim('a');
    expect(second).toMatchObject({ status: 'acquired', token: first + 1, takeover: false });
    // The new claim has no fingerprint; the released one's must not leak into it.
    expect(await client.hexists(key, 'f')).toBe(0);
  });

  it('survive an expired lease: the next claim is a takeover with the next token', async () => {
    const first = await acquire('a');
    await expireLease('a');
    expect(await store.get('jobs', 'a')).toBeUndefined();
    expect(await claim('a')).toMatchObject({ status: 'acquired', token: first + 1, takeover: true });
  });

  it('keep growing after the record is gone (window ended): the first token comes from the server clock', async () => {
    const first = await acquire('a');
    await client.del(store.keyOf('jobs', 'a'));
    const second = await acquire('a');
    expect(second).toBeGreaterThan(first);
    expect(Number.isSafeInteger(second)).toBe(true);
  });

  it('reject a stale owner without touching the record', async () => {
    const stale = await acquire('a');
    await expireLease('a');
    const owner = await acquire('a');
    expect(owner).toBe(stale + 1);
    const key = store.keyOf('jobs', 'a');
    const before = await client.hgetall(key);
    const ref = { scope: 'jobs', id: 'a', token: stale };
    expect(await store.extend({ ...ref, leaseMs: 60_000 })).toBe('lease-lost');
    expect(await store.complete({ ...ref, result: 'stale', windowMs: WINDOW })).toBe('lease-lost');
    expect(await store.fail({ ...ref, error: 'STALE', windowMs: WINDOW })).toBe('lease-lost');
    expect(await store.release(ref)).toBe('lease-lost');
    expect(await store.completeMany([{ ...ref, windowMs: WINDOW }])).toEqual(['lease-lost']);
    expect(await store.extendMany([{ ...ref, leaseMs: 60_000 }])).toEqual(['lease-lost']);
    expect(await store.releaseMany([ref])).toEqual(['lease-lost']);
    expect(await client.hgetall(key)).toEqual(before);
    expect(await store.complete({ scope: 'jobs', id: 'a', token: owner, windowMs: WINDOW })).toBe('ok');
  });

  it('compare exactly: a token that is numerically close or formatted differently is stale', async () => {
    const token = await acquire('a');
    for (const wrong of [token - 1, token + 1, token + 0.5]) {
      expect(await store.extend({ scope: 'jobs', id: 'a', token: wrong, leaseMs: 1000 })).toBe('lease-lost');
    }
    expect(await store.extend({ scope: 'jobs', id: 'a', token, leaseMs: 1000 })).toBe('ok');
  });

  it('let the owner of an expired lease that nobody took over extend and complete', async () => {
    const token = await acquire('a');
    await expireLease('a');
    expect(await store.extend({ scope: 'jobs', id: 'a', token, leaseMs: LEASE })).toBe('ok');
    expect(await store.get('jobs', 'a')).toMatchObject({ state: 'in-progress', token });
    await expireLease('a');
    expect(await store.complete({ scope: 'jobs', id: 'a', token, windowMs: WINDOW })).toBe('ok');
    expect(await store.get('jobs', 'a')).toMatchObject({ state: 'completed', token });
  });

  it('cannot be released or completed twice', async () => {
    const token = await acquire('a');
    expect(await store.release({ scope: 'jobs', id: 'a', token })).toBe('ok');
    expect(await store.release({ scope: 'jobs', id: 'a', token })).toBe('lease-lost');
    expect(await store.complete({ scope: 'jobs', id: 'a', token, windowMs: WINDOW })).toBe('lease-lost');
  });
});

describe('batches', () => {
  it('answer in request order across scopes and with duplicate IDs in one batch', async () => {
    const t = await acquire('done');
    await store.complete({ scope: 'jobs', id: 'done', token: t, result: 'R', windowMs: WINDOW });
    const results = await store.claimMany([
      { scope: 'jobs', id: 'x', leaseMs: LEASE, windowMs: WINDOW },
      { scope: 'other', id: 'x', leaseMs: LEASE, windowMs: WINDOW },
      { scope: 'jobs', id: 'done', leaseMs: LEASE, windowMs: WINDOW },
      { scope: 'jobs', id: 'x', leaseMs: LEASE, windowMs: WINDOW },
      { scope: 'third', id: 'y', fingerprint: 'f', leaseMs: LEASE, windowMs: WINDOW },
    ]);
    expect(results.map((r) => r.status)).toEqual(['acquired', 'acquired', 'completed', 'in-progress', 'acquired']);
    expect(results[2]).toMatchObject({ record: { result: 'R' } });

    const refs = [0, 1, 4].map((i) => {
      const r = results[i]!;
      if (r.status !== 'acquired') throw new Error('not acquired');
      return { scope: ['jobs', 'other', 'third'][[0, 1, 4].indexOf(i)]!, id: i === 4 ? 'y' : 'x', token: r.token };
    });
    expect(await store.extendMany(refs.map((r) => ({ ...r, leaseMs: LEASE })))).toEqual(['ok', 'ok', 'ok']);
    expect(
      await store.completeMany([
        { ...refs[0]!, windowMs: WINDOW, result: '' },
        { ...refs[1]!, token: refs[1]!.token + 1, windowMs: WINDOW },
        { ...refs[2]!, windowMs: WINDOW },
      ]),
    ).toEqual(['ok', 'lease-lost', 'ok']);
    expect(await store.get('jobs', 'x')).toMatchObject({ state: 'completed', result: '' });
    expect(await store.releaseMany([refs[1]!, refs[2]!])).toEqual(['ok', 'lease-lost']);
  });

  it('that fail for one scope give back what the other scopes acquired', async () => {
    // A foreign value of the wrong type under one scope makes that scope's script call fail.
    await client.set(store.keyOf('broken', 'x'), 'not a hash');
    const batch = [
      { scope: 'jobs', id: 'p', leaseMs: LEASE, windowMs: WINDOW },
      { scope: 'broken', id: 'x', leaseMs: LEASE, windowMs: WINDOW },
      { scope: 'more', id: 'q', leaseMs: LEASE, windowMs: WINDOW },
    ];
    await expect(store.claimMany(batch)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect(await store.get('jobs', 'p')).toBeUndefined();
    expect(await store.get('more', 'q')).toBeUndefined();
    expect(await client.hget(store.keyOf('jobs', 'p'), 's')).toBe('0');
    expect(await claim('p')).toMatchObject({ status: 'acquired', takeover: false });
  });

  it('of zero requests cost nothing', async () => {
    expect(await store.claimMany([])).toEqual([]);
    expect(await store.completeMany([])).toEqual([]);
    expect(await store.extendMany([])).toEqual([]);
    expect(await store.releaseMany([])).toEqual([]);
  });
});

describe('clients', () => {
  it.each([
    ['a keyPrefix', { keyPrefix: 'kp:' }, 'kp:'],
    ['auto-pipelining', { enableAutoPipelining: true }, ''],
  ])('works on a client with %s', async (_name, options, keyPrefix) => {
    const configured = await connectSharedRedis(options);
    try {
      const s = new RedisStore({ client: configured, prefix });
      const [a, b] = await Promise.all([
        s.claim({ scope: 'c', id: '1', leaseMs: LEASE, windowMs: WINDOW }),
        s.claimMany([
          { scope: 'c', id: '2', leaseMs: LEASE, windowMs: WINDOW },
          { scope: 'd', id: '2', leaseMs: LEASE, windowMs: WINDOW },
        ]),
      ]);
      expect(a.status).toBe('acquired');
      expect(b.map((r) => r.status)).toEqual(['acquired', 'acquired']);
      if (a.status === 'acquired') {
        expect(await s.complete({ scope: 'c', id: '1', token: a.token, windowMs: WINDOW })).toBe('ok');
      }
      expect(await s.get('c', '1')).toMatchObject({ state: 'completed' });
      const keys = [s.keyOf('c', '1'), s.keyOf('c', '2'), s.keyOf('d', '2')].map((k) => keyPrefix + k);
      expect(await client.exists(...keys)).toBe(3);
      await client.del(...keys);
    } finally {
      configured.disconnect();
    }
  });

  it('close() leaves the client open', async () => {
    await store.close();
    expect(await client.ping()).toBe('PONG');
  });
});
