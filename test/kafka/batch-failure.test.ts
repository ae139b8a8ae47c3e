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

  it.each([
    ['a missing header', {}, 'ID_MISSING'],
    ['a header that is not UTF-8', { 'onceonly-id': Buffer.from([0xff, 0xfe, 0x00, 0x80]) }, 'ID_INVALID'],
    ['an oversized ID', { 'onceonly-id': 'x'.repeat(1_000) }, 'ID_TOO_LONG'],
  ] as const)('bad input, %s: a typed, non-retriable failure that stops the consumer without committing past it', async (_name, headers, code) => {
    const kafka = kafkaClient();
    const topic = await newTopic('bad-input', 1);
    const groupId = groupName('bad-input');
    const producer = await connectProducer(kafka);
    await producer
      .send({ topic, messages: [{ value: 'good', headers: { 'onceonly-id': 'good-0' } }, { value: 'bad', headers }, { value: 'good', headers: { 'onceonly-id': 'good-2' } }] })
      .finally(() => producer.disconnect());

    const dedup = new KafkaDedup({ groupId, store: redis.store });
    const consumer = fastConsumer(kafka, groupId);
    const admin = kafka.admin();
    let crash: { error: unknown; restart: boolean } | undefined;
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      crash = { error: payload.error, restart: payload.restart };
    });
    await Promise.all([consumer.connect(), admin.connect()]);
    try {
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      await consumer.run(dedup.batchRunConfig(async (_m, { id }) => void (await redis.apply(id))));
      await waitFor('the consumer to stop on the bad message', () => crash !== undefined);
      // kafkajs reads `retriable: false` and stops instead of redelivering the same bad message forever.
      expect(crash!.restart).toBe(false);
      const cause = (crash!.error as Error).cause; // kafkajs wraps it in KafkaJSNonRetriableError
      expect(cause).toBeInstanceOf(InvalidIdError);
      expect(cause).toMatchObject({ code, retriable: false, kafka: { topic, partition: 0, offset: '1' } });
      expect((await committed(admin, groupId, topic)).get(0)).toBe('1'); // the bad message is not lost
    } finally {
      await Promise.all([consumer.disconnect(), admin.disconnect()]);
    }
    expect([...(await redis.effects()).keys()]).toEqual(['good-0']);
  });
});
