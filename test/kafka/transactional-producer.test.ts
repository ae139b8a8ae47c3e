import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KafkaDedup, withMessageIds } from '@onceonly/kafka';
import { Partitioners } from 'kafkajs';
import { randomName } from '../support/kafka/broker.js';
import { fastConsumer, groupName, kafkaClient, newTopic, redisFixture, waitFor } from './kafka-test-context.js';

const UUIDV7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('kafka: withMessageIds on a transactional producer', () => {
  let redis: Awaited<ReturnType<typeof redisFixture>>;
  beforeEach(async () => {
    redis = await redisFixture();
  });
  afterEach(async () => {
    await redis?.close();
  });

  it("stamps what a transaction's send and sendBatch send, so the consumer group processes every message once", async () => {
    const kafka = kafkaClient();
    const topic = await newTopic('tx-stamp', 2);
    const groupId = groupName('tx-stamp');
    const producer = withMessageIds(
      kafka.producer({ transactionalId: randomName('tx-stamp'), idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false }),
    );
    const values = (prefix: string) => Array.from({ length: 10 }, (_, i) => ({ key: `k${i}`, value: `${prefix}-${i}` }));
    await producer.connect();
    try {
      const tx = await producer.transaction();
      await tx.send({ topic, messages: values('send') });
      await tx.sendBatch({ topicMessages: [{ topic, messages: values('batch') }] });
      await tx.commit();
    } finally {
      await producer.disconnect();
    }

    const dedup = new KafkaDedup({ groupId, store: redis.store });
    const idByValue = new Map<string, string>();
    const consumer = fastConsumer(kafka, groupId);
    let crash: unknown;
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      crash = payload.error;
    });
    await consumer.connect();
    try {
      await consumer.subscribe({ topics: [topic], fromBeginning: true }); // read_committed: the transaction's messages
      await consumer.run(
        dedup.batchRunConfig(async (message, { id }) => {
          idByValue.set(message.value!.toString(), id);
          await redis.apply(id);
        }),
      );
      await waitFor('20 messages processed, or the consumer to stop', () => idByValue.size === 20 || crash !== undefined);
    } finally {
      await consumer.disconnect();
    }
    // Unstamped messages stop the consumer with ID_MISSING (the cause kafkajs wraps).
    expect((crash as Error | undefined)?.cause ?? crash).toBeUndefined();
    expect([...idByValue.keys()].sort()).toEqual([...values('send'), ...values('batch')].map((m) => m.value).sort());
    const ids = [...idByValue.values()];
    for (const id of ids) expect(id).toMatch(UUIDV7);
    expect(new Set(ids).size).toBe(20);
    const effects = await redis.effects();
    expect(effects.size).toBe(20);
    expect([...effects.values()].every((n) => n === 1)).toBe(true);
  });
});
