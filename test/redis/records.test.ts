// Record layout, TTLs and fencing in Redis itself. The generic transitions live in the shared
// conformance suite; these tests pin down what is particular to the Redis store.
import { RedisStore } from '@onceonly/redis';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { encodeRecordValue } from '../../packages/redis/src/record-value.js';
import { connectSharedRedis, deleteUnder, expireLease, randomPrefix, storedRecord, writeLegacyRecord, type LegacyFields } from './redis-test-context.js';

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
const expire = (id: string) => expireLease(client, store.keyOf('jobs', id));
const stored = (id: string) => storedRecord(client, store.keyOf('jobs', id));
/** A fingerprint as the processor's 'auto' makes them: 22 base64url characters. */
const FP = 'Ab9_-zZ0aB1cD2eF3gH4iJ';

describe('record layout', () => {
  it('keeps an in-progress claim as one small string, the lease judged by server time', async () => {
    const before = await serverNow();
    const result = await claim('a', { fingerprint: 'fp1' });
    const after = await serverNow();
    expect(result.status).toBe('acquired');
    if (result.status !== 'acquired') return;
    expect(result.takeover).toBe(false);
    expect(result.leaseUntil).toBeGreaterThanOrEqual(before + LEASE);
    expect(result.leaseUntil).toBeLessThanOrEqual(after + LEASE);

    const key = store.keyOf('jobs', 'a');
    expect(await client.type(key)).toBe('string');
    const record = await stored('a');
    expect(record).toEqual({
      state: 1,
      suspect: false,
      token: result.token,
      claimedAt: result.leaseUntil - LEASE,
      updatedAt: result.leaseUntil - LEASE,
      leaseUntil: result.leaseUntil,
      fingerprint: 'fp1',
    });
    // A first claim's token is its server time in µs: claimedAt is stored as a zero delta from it.
    expect(Math.floor(result.token / 1000)).toBe(record!.claimedAt);
    // The scripts and the TypeScript codec agree byte for byte.
    expect((await client.getBuffer(key))!.equals(encodeRecordValue(record!))).toBe(true);
    const ttl = await client.pttl(key);
    expect(ttl).toBeGreaterThan(WINDOW - 2_000);
    expect(ttl).toBeLessThanOrEqual(WINDOW);
  });

  it('keeps an in-progress record at least for the lease when the lease is longer than the window', async () => {
    await acquire('a', { leaseMs: 30_000, windowMs: 1_000 });
    expect(await client.pttl(store.keyOf('jobs', 'a'))).toBeGreaterThan(28_000);
  });

  it('keeps a completed record for the window from completion: no lease, the fingerprint packed in 17 bytes', async () => {
    const token = await acquire('a', { fingerprint: FP });
    expect(await store.complete({ scope: 'jobs', id: 'a', token, windowMs: 120_000 })).toBe('ok');
    const key = store.keyOf('jobs', 'a');
    const value = (await client.getBuffer(key))!;
    const record = await stored('a');
    expect(record).toMatchObject({ state: 2, suspect: false, token, fingerprint: FP });
    expect(record).not.toHaveProperty('leaseUntil');
    // header, token (7), claimedAt and updatedAt deltas (1–2 bytes each: a fast handler), fingerprint (17):
    // at most 28 bytes, so Redis keeps it in one 48-byte allocation with its object (embstr).
    expect(value.length).toBeLessThanOrEqual(28);
    expect(value[0]).toBe(64 + 2 + 8 + 16);
    expect(await client.object('ENCODING', key)).toBe('embstr');
    expect(await client.pttl(key)).toBeGreaterThan(118_000);

    const again = await claim('a', { fingerprint: FP });
    expect(again).toMatchObject({ status: 'completed', record: { state: 'completed', token, fingerprint: FP } });
    if (again.status === 'completed') expect(again.record.leaseUntil).toBeUndefined();
  });

  it('keeps a completed record with its result', async () => {
    const token = await acquire('a', { fingerprint: 'fp1' });
    expect(await store.complete({ scope: 'jobs', id: 'a', token, result: '{"n":1,"é":"日本"}', windowMs: 120_000 })).toBe('ok');
    expect(await stored('a')).toMatchObject({ state: 2, token, fingerprint: 'fp1', extra: '{"n":1,"é":"日本"}' });
    expect(await claim('a')).toMatchObject({ status: 'completed', record: { state: 'completed', token, fingerprint: 'fp1', result: '{"n":1,"é":"日本"}' } });
  });

  it('keeps a completed record without fingerprint or result, claimed once and finished fast, as an integer', async () => {
    const token = await acquire('a');
    expect(await store.complete({ scope: 'jobs', id: 'a', token, windowMs: WINDOW })).toBe('ok');
    const key = store.keyOf('jobs', 'a');
    expect(await client.object('ENCODING', key)).toBe('int');
    const text = (await client.get(key))!;
    expect(text.slice(0, -3)).toBe(String(token));
    const record = await store.get('jobs', 'a');
    expect(record).toEqual({ state: 'completed', token, claimedAt: Math.floor(token / 1000), updatedAt: Math.floor(token / 1000) + Number(text.slice(-3)) });
    // The integer form holds an empty result apart: '' is a result.
    const other = await acquire('b');
    expect(await store.complete({ scope: 'jobs', id: 'b', token: other, result: '', windowMs: WINDOW })).toBe('ok');
    expect(await store.get('jobs', 'b')).toMatchObject({ state: 'completed', result: '' });
  });

  it('keeps a failed record for the window with its error code', async () => {
    const token = await acquire('a');
    expect(await store.fail({ scope: 'jobs', id: 'a', token, error: 'E_BAD_INPUT', windowMs: 90_000 })).toBe('ok');
    expect(await stored('a')).toMatchObject({ state: 3, token, extra: 'E_BAD_INPUT' });
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
    const before = await client.getBuffer(store.keyOf('jobs', 'a'));
    const second = await claim('a', { fingerprint: 'second' });
    expect(second).toMatchObject({ status: 'in-progress', record: { fingerprint: 'first' } });
    expect((await client.getBuffer(store.keyOf('jobs', 'a')))!.equals(before!)).toBe(true);
  });

  it('round-trips every kind of fingerprint exactly', async () => {
    const fingerprints = [FP, 'A'.repeat(22), '_'.repeat(22), 'x'.repeat(21), 'x'.repeat(23), 'Ab9_-zZ0aB1cD2eF3gH4i=', 'ü日😀', ' ', 'y'.repeat(512)];
    const results = await store.claimMany(fingerprints.map((fingerprint, i) => ({ scope: 'jobs', id: `f${i}`, fingerprint, leaseMs: LEASE, windowMs: WINDOW })));
    const again = await store.claimMany(fingerprints.map((_, i) => ({ scope: 'jobs', id: `f${i}`, leaseMs: LEASE, windowMs: WINDOW })));
    expect(results.every((r) => r.status === 'acquired')).toBe(true);
    again.forEach((r, i) => expect(r).toMatchObject({ status: 'in-progress', record: { fingerprint: fingerprints[i] } }));
  });
});

describe('records of the 0.1 layout (hashes), as a rolling upgrade leaves them', () => {
  const legacy = async (id: string, fields: Omit<LegacyFields, 't' | 'c' | 'u'> & Partial<LegacyFields>, ttlMs = WINDOW) => {
    const now = await serverNow();
    const all = { t: String(now * 1000 + 7), c: String(now - 50), u: String(now - 10), ...fields } as LegacyFields;
    await writeLegacyRecord(client, store.keyOf('jobs', id), all, ttlMs);
    return { now, token: Number(all.t), claimedAt: Number(all.c), updatedAt: Number(all.u) };
  };

  it('answers a completed or failed hash as a duplicate, with its result, fingerprint and times', async () => {
    const done = await legacy('done', { s: '2', f: FP, r: '{"n":1}', l: '1' });
    const bad = await legacy('bad', { s: '3', e: 'E_OLD' });
    const [a, b] = await store.claimMany([
      { scope: 'jobs', id: 'done', fingerprint: FP, leaseMs: LEASE, windowMs: WINDOW },
      { scope: 'jobs', id: 'bad', leaseMs: LEASE, windowMs: WINDOW },
    ]);
    expect(a).toEqual({
      status: 'completed',
      record: { state: 'completed', token: done.token, claimedAt: done.claimedAt, updatedAt: done.updatedAt, fingerprint: FP, result: '{"n":1}' },
    });
    expect(b).toEqual({ status: 'failed', record: { state: 'failed', token: bad.token, claimedAt: bad.claimedAt, updatedAt: bad.updatedAt, error: 'E_OLD' } });
    expect(await store.get('jobs', 'done')).toEqual(a!.status === 'completed' ? a!.record : undefined);
    expect(await client.type(store.keyOf('jobs', 'done'))).toBe('hash'); // read, not rewritten
  });

  it('answers a live in-progress hash as in progress, and takes over an expired one with the next token', async () => {
    const live = await legacy('live', { s: '1', l: String(Date.now() + 60_000), f: 'old-fp' });
    expect(await claim('live')).toMatchObject({ status: 'in-progress', record: { token: live.token, fingerprint: 'old-fp' } });
    const gone = await legacy('gone', { s: '1', l: '1', f: 'old-fp' });
    expect(await claim('gone')).toMatchObject({ status: 'acquired', token: gone.token + 1, takeover: true });
    // Now a string of the new layout, without the old claim's fingerprint.
    expect(await client.type(store.keyOf('jobs', 'gone'))).toBe('string');
    expect(await stored('gone')).toMatchObject({ state: 1, suspect: true, token: gone.token + 1 });
    expect((await stored('gone'))?.fingerprint).toBeUndefined();
  });

  it('reads tombstones: the next token, and a takeover only when the hash was suspect', async () => {
    const plain = await legacy('plain', { s: '0', l: '1' });
    const suspect = await legacy('suspect', { s: '0', l: '1', x: '1' });
    const [a, b] = await store.claimMany([
      { scope: 'jobs', id: 'plain', leaseMs: LEASE, windowMs: WINDOW },
      { scope: 'jobs', id: 'suspect', leaseMs: LEASE, windowMs: WINDOW },
    ]);
    expect(a).toMatchObject({ status: 'acquired', token: plain.token + 1, takeover: false });
    expect(b).toMatchObject({ status: 'acquired', token: suspect.token + 1, takeover: true });
    expect(await store.get('jobs', 'plain')).toMatchObject({ state: 'in-progress' });
  });

  it('lets the owner of a 0.1 claim extend, complete, release or fail it, and fences everyone else', async () => {
    const lease = String(Date.now() + 60_000);
    const c = await legacy('c', { s: '1', l: lease, f: 'fp' });
    const e = await legacy('e', { s: '1', l: lease });
    const r = await legacy('r', { s: '1', l: lease, x: '1' });
    const f = await legacy('f', { s: '1', l: lease });
    const ref = (id: string, token: number) => ({ scope: 'jobs', id, token });
    expect(await store.complete({ ...ref('c', c.token + 1), windowMs: WINDOW })).toBe('lease-lost');
    expect(await client.type(store.keyOf('jobs', 'c'))).toBe('hash');
    expect(await store.complete({ ...ref('c', c.token), result: 'R', windowMs: WINDOW })).toBe('ok');
    expect(await store.get('jobs', 'c')).toMatchObject({ state: 'completed', token: c.token, fingerprint: 'fp', result: 'R', claimedAt: c.claimedAt });
    expect(await store.extend({ ...ref('e', e.token), leaseMs: 120_000 })).toBe('ok');
    expect((await store.get('jobs', 'e'))?.leaseUntil).toBeGreaterThan(Date.now() + 100_000);
    expect(await store.release(ref('r', r.token))).toBe('ok');
    expect(await claim('r')).toMatchObject({ status: 'acquired', token: r.token + 1, takeover: true });
    expect(await store.fail({ ...ref('f', f.token), error: 'E', windowMs: WINDOW })).toBe('ok');
    expect(await store.get('jobs', 'f')).toMatchObject({ state: 'failed', error: 'E' });
  });
});

describe('the scope epoch', () => {
  it('is written once, without expiry, by the first claim in a scope, and only read afterwards', async () => {
    const key = store.epochKeyOf('jobs');
    expect(key).toBe(`${prefix}:{jobs}:!epoch`);
    await acquire('a');
    const epoch = await client.get(key);
    expect(epoch).toMatch(/^[A-Za-z0-9_-]{12}$/);
    expect(await client.pttl(key)).toBe(-1);
    // Another store (another worker) finds it and keeps it.
    const other = new RedisStore({ client, prefix });
    await other.claimMany([{ scope: 'jobs', id: 'b', leaseMs: LEASE, windowMs: WINDOW }]);
    await other.claimManyMarked({ scope: 'jobs', name: 't:0' }, [{ scope: 'jobs', id: 'c', position: 1, leaseMs: LEASE, windowMs: WINDOW }], true);
    expect(await client.get(key)).toBe(epoch);
    // Only claims read it: completions, extensions, releases and reads do not create one.
    await client.del(store.epochKeyOf('other'));
    await store.get('other', 'x');
    await store.completeMany([{ scope: 'other', id: 'x', token: 1, windowMs: WINDOW }]);
    expect(await client.exists(store.epochKeyOf('other'))).toBe(0);
  });
});

describe('fencing tokens', () => {
  it('survive a release: claim → release → claim gives the next token, and the tombstone reads as absent', async () => {
    const first = await acquire('a', { fingerprint: 'fp1' });
    const key = store.keyOf('jobs', 'a');
    const ttlBefore = await client.pttl(key);
    expect(await store.release({ scope: 'jobs', id: 'a', token: first })).toBe('ok');
    expect(await stored('a')).toMatchObject({ state: 0, token: first, fingerprint: 'fp1' });
    expect(await client.pttl(key)).toBeLessThanOrEqual(ttlBefore);
    expect(await store.get('jobs', 'a')).toBeUndefined();

    const second = await claim('a');
    expect(second).toMatchObject({ status: 'acquired', token: first + 1, takeover: false });
    // The new claim has no fingerprint; the released one's must not leak into it.
    expect((await stored('a'))?.fingerprint).toBeUndefined();
  });

  it('survive an expired lease: the next claim is a takeover with the next token', async () => {
    const first = await acquire('a');
    await expire('a');
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
    await expire('a');
    const owner = await acquire('a');
    expect(owner).toBe(stale + 1);
    const key = store.keyOf('jobs', 'a');
    const before = await client.getBuffer(key);
    const ref = { scope: 'jobs', id: 'a', token: stale };
    expect(await store.extend({ ...ref, leaseMs: 60_000 })).toBe('lease-lost');
    expect(await store.complete({ ...ref, result: 'stale', windowMs: WINDOW })).toBe('lease-lost');
    expect(await store.fail({ ...ref, error: 'STALE', windowMs: WINDOW })).toBe('lease-lost');
    expect(await store.release(ref)).toBe('lease-lost');
    expect(await store.completeMany([{ ...ref, windowMs: WINDOW }])).toEqual(['lease-lost']);
    expect(await store.extendMany([{ ...ref, leaseMs: 60_000 }])).toEqual(['lease-lost']);
    expect(await store.releaseMany([ref])).toEqual(['lease-lost']);
    expect((await client.getBuffer(key))!.equals(before!)).toBe(true);
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
    await expire('a');
    expect(await store.extend({ scope: 'jobs', id: 'a', token, leaseMs: LEASE })).toBe('ok');
    expect(await store.get('jobs', 'a')).toMatchObject({ state: 'in-progress', token });
    await expire('a');
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
    await client.rpush(store.keyOf('broken', 'x'), 'not a record');
    const batch = [
      { scope: 'jobs', id: 'p', leaseMs: LEASE, windowMs: WINDOW },
      { scope: 'broken', id: 'x', leaseMs: LEASE, windowMs: WINDOW },
      { scope: 'more', id: 'q', leaseMs: LEASE, windowMs: WINDOW },
    ];
    await expect(store.claimMany(batch)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect(await store.get('jobs', 'p')).toBeUndefined();
    expect(await store.get('more', 'q')).toBeUndefined();
    expect(await stored('p')).toMatchObject({ state: 0 });
    expect(await claim('p')).toMatchObject({ status: 'acquired', takeover: false });
  });

  it('keep each request\'s lease, window, fingerprint and result when they differ within one batch', async () => {
    // A script call passes the lease and the window once for all its records, so a batch that mixes
    // them goes out as one call per (scope, lease, window): each record must still get its own.
    const requests = [
      { scope: 'jobs', id: 'short', leaseMs: 1_000, windowMs: WINDOW, fingerprint: FP },
      { scope: 'jobs', id: 'long', leaseMs: 9_000, windowMs: WINDOW },
      { scope: 'jobs', id: 'wide', leaseMs: 1_000, windowMs: 5 * WINDOW, fingerprint: 'ü日😀' },
      { scope: 'jobs', id: 'plain', leaseMs: 1_000, windowMs: WINDOW },
    ];
    const claims = await store.claimMany(requests);
    expect(claims.map((c) => c.status)).toEqual(['acquired', 'acquired', 'acquired', 'acquired']);
    for (const request of requests) {
      const stored = await storedRecord(client, store.keyOf('jobs', request.id));
      expect(stored?.state).toBe(1);
      expect(stored!.leaseUntil! - stored!.claimedAt).toBe(request.leaseMs); // the lease the server keeps
      expect(stored?.fingerprint).toBe(request.fingerprint);
    }
    const tokens = claims.map((c) => (c.status === 'acquired' ? c.token : 0));
    expect(
      await store.completeMany([
        { scope: 'jobs', id: 'short', token: tokens[0]!, windowMs: WINDOW, result: 'one' },
        { scope: 'jobs', id: 'long', token: tokens[1]!, windowMs: 2 * WINDOW },
        { scope: 'jobs', id: 'wide', token: tokens[2]!, windowMs: 5 * WINDOW, result: '' },
        { scope: 'jobs', id: 'plain', token: tokens[3]!, windowMs: WINDOW },
      ]),
    ).toEqual(['ok', 'ok', 'ok', 'ok']);
    const ttl = async (id: string) => client.pttl(store.keyOf('jobs', id));
    expect(await ttl('short')).toBeGreaterThan(WINDOW - 5_000);
    expect(await ttl('short')).toBeLessThanOrEqual(WINDOW);
    expect(await ttl('long')).toBeGreaterThan(2 * WINDOW - 5_000);
    expect(await ttl('wide')).toBeGreaterThan(5 * WINDOW - 5_000);
    expect(await store.get('jobs', 'short')).toMatchObject({ state: 'completed', result: 'one', fingerprint: FP });
    expect(await store.get('jobs', 'long')).not.toHaveProperty('result');
    expect(await store.get('jobs', 'wide')).toMatchObject({ state: 'completed', result: '', fingerprint: 'ü日😀' });
    expect(await store.get('jobs', 'plain')).not.toHaveProperty('result');
  });

  it('with a mark take one lease and one window, and say so otherwise', async () => {
    const mark = { scope: 'jobs', name: 't:0' };
    const at = (id: string, position: number, leaseMs = LEASE) => ({ scope: 'jobs', id, leaseMs, windowMs: WINDOW, position });
    await expect(store.claimManyMarked(mark, [at('a', 0), at('b', 1, LEASE + 1)], true)).rejects.toThrow(/same leaseMs and windowMs/);
    const { claims } = await store.claimManyMarked(mark, [at('a', 0), { ...at('b', 1), fingerprint: FP }], true);
    const refs = claims.map((c, i) => ({ scope: 'jobs', id: ['a', 'b'][i]!, token: c?.status === 'acquired' ? c.token : 0 }));
    await expect(store.completeManyMarked(mark, [{ ...refs[0]!, windowMs: WINDOW }, { ...refs[1]!, windowMs: 2 * WINDOW }], { from: 0, to: 1 })).rejects.toThrow(/same windowMs/);
    expect(await store.get('jobs', 'a')).toMatchObject({ state: 'in-progress' });
    const done = await store.completeManyMarked(mark, [{ ...refs[0]!, windowMs: WINDOW }, { ...refs[1]!, windowMs: WINDOW, result: 'r' }], { from: 0, to: 1 });
    expect(done).toEqual({ results: ['ok', 'ok'], mark: { low: 0, high: 1 } });
    expect(await store.get('jobs', 'b')).toMatchObject({ state: 'completed', result: 'r', fingerprint: FP });
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
