import { describe, expect, it } from 'vitest';
import { InvalidIdError, InvalidOptionsError, MemoryStore } from '@onceonly/core';
import type { IHeaders, KafkaMessage } from 'kafkajs';
import { KafkaDedup, readHeaderId, stampMessages, withMessageIds } from '@onceonly/kafka';
import { batchPayload } from './batch-payload.js';

const TOPIC = 'orders';
const payload = (messages: KafkaMessage[], opts: { stale?: () => boolean } = {}) => batchPayload(messages, { topic: TOPIC, ...opts });

/** `null` is what kafkajs decodes from a header sent with a null value (its `IHeaders` type omits it). */
type HeaderValue = string | Buffer | null;

function message(offset: number, id: HeaderValue | readonly HeaderValue[] | undefined, value = `v:${String(id)}`): KafkaMessage {
  return {
    key: null,
    value: Buffer.from(value),
    timestamp: '0',
    attributes: 0,
    offset: String(offset),
    headers: id === undefined ? {} : ({ 'onceonly-id': id } as IHeaders),
  };
}


const batchOf = (ids: string[], start = 0) => ids.map((id, i) => message(start + i, id));

describe('KafkaDedup.eachBatch', () => {
  it('runs each ID once and resolves every done offset in order', async () => {
    const dedup = new KafkaDedup({ groupId: 'g', store: new MemoryStore() });
    const seen: string[] = [];
    const handler = dedup.eachBatch(async (m) => void seen.push(m.offset));
    const first = payload(batchOf(['a', 'b', 'a', 'c']));
    await handler(first.payload);
    expect(seen).toEqual(['0', '1', '3']); // offset 2 repeats 'a'
    expect(first.resolved).toEqual(['0', '1', '2', '3']);
    // Redelivered (e.g. a producer retry under new offsets): nothing runs again, everything resolves.
    const again = payload(batchOf(['a', 'b', 'c'], 10));
    await handler(again.payload);
    expect(seen).toHaveLength(3);
    expect(again.resolved).toEqual(['10', '11', '12']);
  });

  it('a failure at message k resolves only up to k-1, releases the rest, and redelivery runs k onward once', async () => {
    const store = new MemoryStore();
    const dedup = new KafkaDedup({ groupId: 'g', store });
    const runs = new Map<string, number>();
    let failAt: string | undefined = 'm3';
    const handler = dedup.eachBatch(async (_m, { id }) => {
      if (id === failAt) throw new Error('boom');
      runs.set(id, (runs.get(id) ?? 0) + 1);
    });
    const ids = ['m0', 'm1', 'm2', 'm3', 'm4', 'm5'];
    const first = payload(batchOf(ids));
    await expect(handler(first.payload)).rejects.toThrow('boom');
    expect(first.resolved).toEqual(['0', '1', '2']);
    for (const id of ['m3', 'm4', 'm5']) expect(await store.get('g', id)).toBeUndefined(); // released / never claimed
    expect(await dedup.markOf(TOPIC, 0)).toEqual({ low: 0, high: 2 });
    failAt = undefined;
    const redelivery = payload(batchOf(ids.slice(3), 3));
    await handler(redelivery.payload);
    expect(redelivery.resolved).toEqual(['3', '4', '5']);
    expect([...runs.values()].every((n) => n === 1)).toBe(true);
    expect(runs.size).toBe(6);
  });

  it('stops when the batch goes stale and resolves nothing past what finished', async () => {
    const dedup = new KafkaDedup({ groupId: 'g', store: new MemoryStore() });
    let ran = 0;
    const handler = dedup.eachBatch(async () => void ran++);
    const p = payload(batchOf(['a', 'b', 'c']), { stale: () => ran >= 1 });
    await handler(p.payload);
    expect(ran).toBe(1);
    expect(p.resolved).toEqual(['0']);
  });

  it('waits on a message another consumer holds, then processes it once the claim is released', async () => {
    const store = new MemoryStore();
    const dedup = new KafkaDedup({ groupId: 'g', store, processor: { inProgressRetryMs: 20 }, heartbeatMs: 10 });
    const other = await store.claim({ scope: 'g', id: 'b', leaseMs: 10_000, windowMs: 60_000 });
    if (other.status !== 'acquired') throw new Error('setup');
    const seen: string[] = [];
    const handler = dedup.eachBatch(async (_m, { id }) => void seen.push(id));
    const p = payload(batchOf(['a', 'b', 'c']));
    const running = handler(p.payload);
    await new Promise((r) => setTimeout(r, 120));
    expect(seen).toEqual(['a']); // never skipped past 'b'
    expect(p.resolved).toEqual(['0']);
    expect(p.heartbeats()).toBeGreaterThan(0);
    await store.release({ scope: 'g', id: 'b', token: other.token });
    await running;
    expect(seen).toEqual(['a', 'b', 'c']);
    expect(p.resolved).toEqual(['0', '1', '2']);
  });

  it('answers a message held by another consumer that completes as a duplicate', async () => {
    const store = new MemoryStore();
    const dedup = new KafkaDedup({ groupId: 'g', store, processor: { inProgressRetryMs: 20 }, heartbeatMs: 10 });
    const other = await store.claim({ scope: 'g', id: 'a', leaseMs: 10_000, windowMs: 60_000 });
    if (other.status !== 'acquired') throw new Error('setup');
    let ran = 0;
    const p = payload(batchOf(['a']));
    const running = dedup.eachBatch(async () => void ran++)(p.payload);
    await new Promise((r) => setTimeout(r, 60));
    await store.complete({ scope: 'g', id: 'a', token: other.token, windowMs: 60_000 });
    await running;
    expect(ran).toBe(0);
    expect(p.resolved).toEqual(['0']);
  });

  it('waits in place while the store is unreachable, heartbeating, then goes on (never throws to kafkajs)', async () => {
    const inner = new MemoryStore();
    let down = true;
    const store = new Proxy(inner, {
      get(target, property) {
        const value = Reflect.get(target, property, target) as unknown;
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          if (down && property !== 'isAvailable' && property !== 'close') return Promise.reject(new Error('ECONNREFUSED (test)'));
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const dedup = new KafkaDedup({ groupId: 'g', store, heartbeatMs: 10, retry: { backoffMs: 10 }, inProgressMaxWaitMs: 20 });
    const seen: string[] = [];
    const p = payload(batchOf(['a', 'b']));
    const running = dedup.eachBatch(async (_m, { id }) => void seen.push(id))(p.payload);
    await new Promise((r) => setTimeout(r, 100));
    expect(seen).toEqual([]);
    expect(p.heartbeats()).toBeGreaterThan(0);
    down = false;
    await running;
    expect(seen).toEqual(['a', 'b']);
    expect(p.resolved).toEqual(['0', '1']);
  });

  it("commits as offsets are resolved, when the consumer's auto-commit settings say so", async () => {
    const dedup = new KafkaDedup({ groupId: 'g', store: new MemoryStore(), flush: { maxPending: 1 } });
    const p = payload(batchOf(['a', 'b', 'c']));
    let commits = 0;
    const resolvedAtCommit: number[] = [];
    p.payload.commitOffsetsIfNecessary = async () => {
      commits++;
      resolvedAtCommit.push(p.resolved.length);
    };
    await dedup.eachBatch(async () => new Promise((r) => setTimeout(r, 5)))(p.payload);
    expect(commits).toBeGreaterThanOrEqual(2);
    expect(resolvedAtCommit[0]).toBeLessThan(3); // the first commit came before the batch ended
  });

  it.each([
    ['a missing header', undefined, 'ID_MISSING'],
    ['a header with a null value', null, 'ID_MISSING'],
    ['a repeated header whose values are all null', [null, null], 'ID_MISSING'],
    ['a repeated header with one null value', ['ok-1', null], 'ID_INVALID'],
    ['a header that is not UTF-8', Buffer.from([0xc3, 0x28, 0xff]), 'ID_INVALID'],
    ['an oversized ID', 'x'.repeat(300), 'ID_TOO_LONG'],
    ['a control character', 'a\nb', 'ID_INVALID'],
  ] as const)('fails with a typed error on %s and resolves nothing from it on', async (_name, id, code) => {
    const dedup = new KafkaDedup({ groupId: 'g', store: new MemoryStore() });
    const seen: string[] = [];
    const handler = dedup.eachBatch(async (m) => void seen.push(m.offset));
    const p = payload([message(0, 'ok-0'), message(1, id), message(2, 'ok-2')]);
    const error = await handler(p.payload).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidIdError);
    expect(error).toMatchObject({ code, retriable: false, kafka: { topic: TOPIC, partition: 0, offset: '1' } });
    expect(seen).toEqual(['0']);
    expect(p.resolved).toEqual(['0']);
  });

  it('skips offsets at or below the high-water mark after their IDs expired; reprocess runs them again', async () => {
    let now = Date.now();
    const store = new MemoryStore({ clock: () => now });
    const processor = { windowMs: 1_000, leaseMs: 100 };
    const dedup = new KafkaDedup({ groupId: 'g', store, idSource: 'offset', processor });
    let ran = 0;
    const handler = async () => void ran++;
    await dedup.eachBatch(handler)(payload(batchOf(['', '', '', ''])).payload);
    expect(ran).toBe(4);
    now += 5_000; // the window has passed: the ID records are gone
    expect(await store.get('g', `${TOPIC}/0/1`)).toBeUndefined();
    const replay = payload(batchOf(['', '', '', '', ''])); // offsets 0..4: 4 is new
    await dedup.eachBatch(handler)(replay.payload);
    expect(ran).toBe(5);
    expect(replay.resolved).toEqual(['0', '1', '2', '3', '4']);
    expect(await dedup.markOf(TOPIC, 0)).toEqual({ low: 0, high: 4 });
    now += 5_000;
    const rerun = new KafkaDedup({ groupId: 'g', store, idSource: 'offset', processor, reprocess: true });
    await rerun.eachBatch(handler)(payload(batchOf(['', '', '', '', ''])).payload);
    expect(ran).toBe(10);
    await dedup.forgetMark(TOPIC, 0);
    expect(await dedup.markOf(TOPIC, 0)).toBeUndefined();
  });

  it('uses a function of the message as the ID', async () => {
    const dedup = new KafkaDedup({ groupId: 'g', store: new MemoryStore(), idSource: (m) => m.value!.toString().split(':')[0] });
    let ran = 0;
    await dedup.eachBatch(async () => void ran++)(payload([message(0, undefined, 'k1:x'), message(1, undefined, 'k1:x'), message(2, undefined, 'k2:y')]).payload);
    expect(ran).toBe(2);
  });

  it('batchRunConfig turns auto-resolve off', () => {
    const dedup = new KafkaDedup({ groupId: 'g' });
    const config = dedup.batchRunConfig(async () => undefined, { partitionsConsumedConcurrently: 2 });
    expect(config).toMatchObject({ eachBatchAutoResolve: false, partitionsConsumedConcurrently: 2 });
    expect(typeof config.eachBatch).toBe('function');
  });
});

describe('KafkaDedup.eachMessage', () => {
  it('runs once per ID and throws (so kafkajs redelivers) on failure', async () => {
    const dedup = new KafkaDedup({ groupId: 'g', store: new MemoryStore() });
    let ran = 0;
    let fail = true;
    const handler = dedup.eachMessage(async () => {
      if (fail) throw new Error('later');
      ran++;
    });
    const args = (m: KafkaMessage) => ({ topic: TOPIC, partition: 0, message: m, heartbeat: async () => undefined, pause: () => () => undefined });
    await expect(handler(args(message(0, 'x')))).rejects.toThrow('later');
    fail = false;
    await handler(args(message(0, 'x')));
    await handler(args(message(7, 'x')));
    expect(ran).toBe(1);
    await expect(handler(args(message(8, undefined)))).rejects.toBeInstanceOf(InvalidIdError);
  });
});

describe('readHeaderId', () => {
  const codeOf = (headers: unknown) => {
    try {
      readHeaderId(headers as IHeaders, 'onceonly-id');
    } catch (error) {
      if (error instanceof InvalidIdError) return error.code;
      throw error;
    }
    return 'read';
  };

  it('reads a null header value as missing and a null among repeated values as invalid', () => {
    expect(codeOf({ 'onceonly-id': null })).toBe('ID_MISSING');
    expect(codeOf({ 'onceonly-id': [null] })).toBe('ID_MISSING');
    expect(codeOf({ 'onceonly-id': [] })).toBe('ID_MISSING');
    expect(codeOf({ 'onceonly-id': [Buffer.from('a'), null] })).toBe('ID_INVALID');
    expect(codeOf({ 'onceonly-id': [null, 'a'] })).toBe('ID_INVALID');
    expect(codeOf({ 'onceonly-id': 42 })).toBe('ID_INVALID');
    expect(readHeaderId({ 'onceonly-id': [Buffer.from('a'), 'a'] }, 'onceonly-id')).toBe('a');
  });
});

describe('readHeaderId decoding', () => {
  const read = (value: unknown) => readHeaderId({ 'onceonly-id': value } as IHeaders, 'onceonly-id');

  it('decodes ASCII and UTF-8 bytes, from a Buffer or any byte view, and refuses bytes that are not UTF-8', () => {
    expect(read(Buffer.from('order-1'))).toBe('order-1');
    const bytes = new TextEncoder().encode('zoë-€-𝄞');
    expect(read(bytes)).toBe('zoë-€-𝄞');
    expect(read(Buffer.from(bytes))).toBe('zoë-€-𝄞');
    // A view into a larger buffer: only its own bytes.
    const padded = Buffer.from('xxorder-2yy');
    expect(read(new Uint8Array(padded.buffer, padded.byteOffset + 2, 7))).toBe('order-2');
    expect(read(new DataView(padded.buffer, padded.byteOffset + 2, 7))).toBe('order-2');
    // Latin-1 bytes are not UTF-8: decoding them as text would let two byte strings share an ID.
    expect(() => read(Buffer.from([0x6f, 0xe9]))).toThrow(/not valid UTF-8/);
    expect(() => read(Buffer.from([0xc3]))).toThrow(InvalidIdError);
  });
});

describe('options', () => {
  it('names the wrong option', () => {
    expect(() => new KafkaDedup({ groupId: '' })).toThrow(InvalidOptionsError);
    expect(() => new KafkaDedup({ groupId: '' })).toThrow(/"groupId"/);
    expect(() => new KafkaDedup({ groupId: 'g', idSource: 'key' as never })).toThrow(/"idSource"/);
    expect(() => new KafkaDedup({ groupId: 'g', processor: { leaseMs: 5 } })).toThrow(/"leaseMs"/);
    expect(() => new KafkaDedup({ groupId: 'g', extra: 1 } as never)).toThrow(/unknown option/);
  });
});

describe('stamping', () => {
  it('stamps messages lacking the header and keeps existing stamps', () => {
    const [a, b] = stampMessages([{ value: 'x' }, { value: 'y', headers: { 'onceonly-id': 'keep' } }]);
    expect(readHeaderId(a!.headers, 'onceonly-id')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7/);
    expect(b!.headers!['onceonly-id']).toBe('keep');
  });

  it('content IDs are equal for equal messages', () => {
    const [a, b, c] = stampMessages([{ value: 'x' }, { value: 'x' }, { value: 'y' }], { id: 'content', header: 'msg-id' });
    expect(a!.headers!['msg-id']).toBe(b!.headers!['msg-id']);
    expect(a!.headers!['msg-id']).not.toBe(c!.headers!['msg-id']);
  });

  it('wraps a producer so send and sendBatch stamp', async () => {
    const sent: unknown[] = [];
    const producer = {
      send: async (record: unknown) => (sent.push(record), []),
      sendBatch: async (batch: unknown) => (sent.push(batch), []),
      connect: async () => undefined,
    };
    const wrapped = withMessageIds(producer as never, { id: () => 'fixed' }) as unknown as typeof producer;
    await wrapped.send({ topic: 't', messages: [{ value: 'a' }] });
    await wrapped.sendBatch({ topicMessages: [{ topic: 't', messages: [{ value: 'b' }] }] });
    expect(sent).toEqual([
      { topic: 't', messages: [{ value: 'a', headers: { 'onceonly-id': 'fixed' } }] },
      { topicMessages: [{ topic: 't', messages: [{ value: 'b', headers: { 'onceonly-id': 'fixed' } }] }] },
    ]);
    expect(typeof (wrapped as { connect: unknown }).connect).toBe('function');
  });
});
