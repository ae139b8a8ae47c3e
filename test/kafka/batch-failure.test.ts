import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidIdError } from '@onceonly/core';
import { KafkaDedup, stampMessages } from '@onceonly/kafka';
import type { EachBatchHandler } from 'kafkajs';
import { committed, connectProducer, fastConsumer, groupName, kafkaClient, newTopic, redisFixture, sendAll, waitFor } from './kafka-test-context.js';

describe('kafka: failures inside a batch', () => {
  let redis: Awaited<ReturnType<typeof redisFixture>>;
  beforeEach(async () => {
    redis = await redisFixture();
  });
  afterEach(async () => {
    await redis?.close();
  });

  it('a handler failing at message k commits only up to k-1, releases the claims after k, and redelivery runs k onward once', async () => {
    const kafka = kafkaClient();
    const topic = await newTopic('batch-failure', 1);
    const groupId = groupName('batch-failure');
    const messages = stampMessages(Array.from({ length: 200 }, (_, i) => ({ value: `m${i}` })));
    const ids = messages.map((m) => String(m.headers!['onceonly-id']));
    const k = 120;
    const producer = await connectProducer(kafka);
    await sendAll(producer, topic, messages).finally(() => producer.disconnect());

    const dedup = new KafkaDedup({ groupId, store: redis.store });
    let failing = true;
    const failures: unknown[] = [];
    const inner = dedup.eachBatch(async (_m, { id }) => {
      if (failing && id === ids[k]) throw new Error(`handler fails at message ${k}`);
      await redis.apply(id);
    });
    // Sees what kafkajs sees; failures.length counts the attempts at message k.
    const eachBatch: EachBatchHandler = async (payload) => inner(payload).catch((error: unknown) => {
      failures.push(error);
      throw error;
    });
    const consumer = fastConsumer(kafka, groupId);
    const admin = kafka.admin();
    await Promise.all([consumer.connect(), admin.connect()]);
    try {
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      await consumer.run({ eachBatchAutoResolve: false, eachBatch });
      await waitFor('the failure at message k', () => failures.length >= 1);
      await waitFor('the offsets before k committed', async () => (await committed(admin, groupId, topic)).get(0) === String(k));
      // While it keeps failing, the offset never moves past k, k's claim and those after it are released.
      await waitFor('a second attempt at k', () => failures.length >= 2);
      expect((await committed(admin, groupId, topic)).get(0)).toBe(String(k));
      for (const id of ids.slice(k)) expect(await redis.store.get(groupId, id)).toBeUndefined();
      expect(await dedup.markOf(topic, 0)).toEqual({ low: 0, high: k - 1 });
      expect((await redis.effects()).size).toBe(k);

      failing = false;
      await waitFor('every offset committed', async () => (await committed(admin, groupId, topic)).get(0) === '200');
    } finally {
      await Promise.all([consumer.disconnect(), admin.disconnect()]);
    }
    const effects = await redis.effects();
    expect(effects.size).toBe(200);
    expect([...effects.values()].every((n) => n === 1)).toBe(true);
    for (const id of ids) expect(await redis.store.get(groupId, id)).toMatchObject({ state: 'completed' });
  });

  it('bad input (missing header, non-UTF-8 header, oversized ID) fails with a typed error and is never committed past', async () => {
    const kafka = kafkaClient();
    const topic = await newTopic('bad-input', 3);
    const groupId = groupName('bad-input');
    const good = (n: number) => ({ value: `good ${n}`, headers: { 'onceonly-id': `good-${n}` } });
    const bad = [
      { value: 'no header' },
      { value: 'binary header', headers: { 'onceonly-id': Buffer.from([0xff, 0xfe, 0x00, 0x80]) } },
      { value: 'oversized', headers: { 'onceonly-id': 'x'.repeat(1_000) } },
    ];
    const producer = await connectProducer(kafka);
    try {
      for (let p = 0; p < 3; p++) await producer.send({ topic, messages: [good(p * 10), { ...bad[p]!, partition: p }, good(p * 10 + 1)].map((m) => ({ ...m, partition: p })) });
    } finally {
      await producer.disconnect();
    }
    const dedup = new KafkaDedup({ groupId, store: redis.store });
    const inner = dedup.eachBatch(async (_m, { id }) => void (await redis.apply(id)));
    const errors = new Map<number, unknown>();
    let attempts = 0;
    const consumer = fastConsumer(kafka, groupId);
    const admin = kafka.admin();
    await Promise.all([consumer.connect(), admin.connect()]);
    try {
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      await consumer.run({
        eachBatchAutoResolve: false,
        eachBatch: async (payload) => inner(payload).catch((error: unknown) => {
          errors.set(payload.batch.partition, error);
          attempts++;
          throw error;
        }),
      });
      await waitFor('a failure on every partition', () => errors.size === 3);
      await waitFor('the good first messages committed', async () => [...(await committed(admin, groupId, topic)).values()].every((o) => o === '1'));
      // Again after more attempts: the bad message is never committed past (nor skipped).
      const before = attempts;
      await waitFor('more attempts at the bad messages', () => attempts >= before + 3);
      expect([...(await committed(admin, groupId, topic)).values()]).toEqual(['1', '1', '1']);
    } finally {
      await Promise.all([consumer.disconnect(), admin.disconnect()]);
    }
    const codes = [0, 1, 2].map((p) => errors.get(p));
    for (const error of codes) expect(error).toBeInstanceOf(InvalidIdError);
    expect(codes.map((e) => (e as InvalidIdError).code)).toEqual(['ID_MISSING', 'ID_INVALID', 'ID_TOO_LONG']);
    expect((codes[1] as Error).message).toMatch(/not valid UTF-8/);
    expect([...(await redis.effects()).keys()].sort()).toEqual(['good-0', 'good-10', 'good-20']);
  });
});
