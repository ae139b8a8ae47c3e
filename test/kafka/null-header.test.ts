import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidIdError } from '@onceonly/core';
import { KafkaDedup } from '@onceonly/kafka';
import type { IHeaders } from 'kafkajs';
import { sendWithJavaProducer } from './java-producer.js';
import { committed, fastConsumer, groupName, kafkaClient, newTopic, redisFixture, waitFor } from './kafka-test-context.js';

// A header sent with a null value (`kcat -H onceonly-id`, a Java producer's `headers().add(name, null)`)
// must fail like a missing header: typed, non-retriable, with everything before it processed and committed.
describe('kafka: a null-valued ID header', () => {
  let redis: Awaited<ReturnType<typeof redisFixture>>;
  beforeEach(async () => {
    redis = await redisFixture();
  });
  afterEach(async () => {
    await redis?.close();
  });

  it.each([
    ['a header with a null value', [null], { 'onceonly-id': null }, 'ID_MISSING'],
    ['a header repeated, once with a null value', ['good-1', null], { 'onceonly-id': [Buffer.from('good-1'), null] }, 'ID_INVALID'],
  ] as const)('%s, sent by the Java client: a typed, non-retriable failure after the messages before it are processed and committed', async (_name, header, decoded, code) => {
    const kafka = kafkaClient();
    const topic = await newTopic('null-header', 1);
    const groupId = groupName('null-header');
    await sendWithJavaProducer(topic, 'onceonly-id', [
      { value: 'good', header: ['good-0'] },
      { value: 'bad', header },
      { value: 'good', header: ['good-2'] },
    ]);

    const dedup = new KafkaDedup({ groupId, store: redis.store });
    const config = dedup.batchRunConfig(async (_m, { id }) => void (await redis.apply(id)));
    // What kafkajs hands the consumer for the bad message (its IHeaders type has no null).
    let badHeaders: IHeaders | undefined;
    const consumer = fastConsumer(kafka, groupId);
    const admin = kafka.admin();
    let crash: { error: unknown; restart: boolean } | undefined;
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      crash = { error: payload.error, restart: payload.restart };
    });
    await Promise.all([consumer.connect(), admin.connect()]);
    try {
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      await consumer.run({
        ...config,
        eachBatch: async (payload) => {
          badHeaders ??= payload.batch.messages.find((m) => m.offset === '1')?.headers;
          await config.eachBatch(payload);
        },
      });
      await waitFor('the consumer to stop on the bad message', () => crash !== undefined);
      expect(badHeaders).toEqual(decoded);
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
