// Offsets are resolved as the done prefix grows and committed while a long batch still runs, when the
// consumer's auto-commit settings ask for it (kafkajs commits an eachBatch only at its end otherwise).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KafkaDedup, stampMessages } from '@onceonly/kafka';
import { committed, connectProducer, fastConsumer, groupName, kafkaClient, newTopic, redisFixture, sendAll, waitFor } from './kafka-test-context.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('kafka: committed offsets during a long batch', () => {
  let redis: Awaited<ReturnType<typeof redisFixture>>;
  beforeEach(async () => {
    redis = await redisFixture();
  });
  afterEach(async () => {
    await redis?.close();
  });

  it('with autoCommitInterval, the committed offset advances while one batch of 1 000 messages runs', { timeout: 60_000 }, async () => {
    const kafka = kafkaClient();
    const topic = await newTopic('progress', 1);
    const groupId = groupName('progress');
    const messages = stampMessages(Array.from({ length: 1_000 }, (_, i) => ({ value: `m${i}` })));
    const producer = await connectProducer(kafka);
    await sendAll(producer, topic, messages).finally(() => producer.disconnect());

    const dedup = new KafkaDedup({ groupId, store: redis.store });
    const consumer = fastConsumer(kafka, groupId);
    const admin = kafka.admin();
    await Promise.all([consumer.connect(), admin.connect()]);
    const batches: number[] = [];
    const seen = new Set<string>();
    try {
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      const config = dedup.batchRunConfig(async () => sleep(3), { autoCommitInterval: 250 });
      await consumer.run({
        ...config,
        eachBatch: async (payload) => {
          batches.push(payload.batch.messages.length);
          await config.eachBatch(payload);
        },
      });
      // What the group has committed, polled while the batch runs.
      await waitFor('every offset committed', async () => {
        const offset = (await committed(admin, groupId, topic)).get(0) ?? '-1';
        seen.add(offset);
        return offset === '1000';
      });
    } finally {
      await Promise.all([consumer.disconnect(), admin.disconnect()]);
      await dedup.close();
    }
    expect(batches[0]).toBe(1_000); // one batch held them all
    const between = [...seen].map(Number).filter((offset) => offset > 0 && offset < 1_000);
    expect(between.length).toBeGreaterThanOrEqual(3);
  });
});
