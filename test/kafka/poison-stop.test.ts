// Without a dead-letter topic, a poison message stops the consumer at its offset (nothing after it is
// committed) and a `poisoned` event says where it is; moving the group's offset past it (what
// `kafka-consumer-groups --reset-offsets --to-offset N+1` does) lets the group go on.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RecordedFailureError } from '@onceonly/core';
import { KafkaDedup } from '@onceonly/kafka';
import { committed, connectProducer, fastConsumer, groupName, kafkaClient, newTopic, redisFixture, waitFor } from './kafka-test-context.js';

class TerminalError extends Error {
  override name = 'TerminalError';
}

describe('kafka: a poison message without a dead-letter topic', () => {
  let redis: Awaited<ReturnType<typeof redisFixture>>;
  beforeEach(async () => {
    redis = await redisFixture();
  });
  afterEach(async () => {
    await redis?.close();
  });

  it('stops the consumer at its offset, fires `poisoned` with topic/partition/offset, and the group goes on once its offset is moved past it', { timeout: 90_000 }, async () => {
    const kafka = kafkaClient();
    const topic = await newTopic('poison-stop', 1);
    const groupId = groupName('poison-stop');
    const producer = await connectProducer(kafka);
    await producer
      .send({ topic, messages: Array.from({ length: 6 }, (_, i) => ({ value: `m${i}`, headers: { 'onceonly-id': `id-${i}` } })) })
      .finally(() => producer.disconnect());

    const effects: string[] = [];
    const poisoned: { id: string; deadLettered: boolean; attempts: number; where: unknown }[] = [];
    const admin = kafka.admin();
    await admin.connect();
    const run = async (until: () => Promise<boolean> | boolean) => {
      // rememberFailures: the terminal failure is recorded, so its redelivery fails with the
      // non-retriable RecordedFailureError and kafkajs stops the consumer instead of looping on it.
      const dedup = new KafkaDedup({ groupId, store: redis.store, processor: { isTerminal: (e) => e instanceof TerminalError, rememberFailures: true } });
      dedup.processor.on('poisoned', ({ id, deadLettered, attempts, where }) => poisoned.push({ id, deadLettered, attempts, where }));
      const consumer = fastConsumer(kafka, groupId);
      let crash: { error: unknown; restart: boolean } | undefined;
      consumer.on(consumer.events.CRASH, ({ payload }) => {
        crash = { error: payload.error, restart: payload.restart };
      });
      await consumer.connect();
      try {
        await consumer.subscribe({ topics: [topic], fromBeginning: true });
        await consumer.run(
          dedup.batchRunConfig(async (_m, { id }) => {
            if (id === 'id-3') throw new TerminalError('cannot be processed, ever');
            effects.push(id);
          }),
        );
        await waitFor('the consumer to stop, or the end', async () => crash !== undefined || (await until()));
      } finally {
        await consumer.disconnect();
        await dedup.close();
      }
      return crash;
    };

    try {
      const crash = await run(() => false);
      expect(crash?.restart).toBe(false); // stopped for good, not looping
      expect((crash!.error as Error).cause).toBeInstanceOf(RecordedFailureError);
      expect(effects).toEqual(['id-0', 'id-1', 'id-2']);
      expect((await committed(admin, groupId, topic)).get(0)).toBe('3'); // not committed past it
      expect(poisoned.length).toBeGreaterThanOrEqual(1);
      for (const event of poisoned) expect(event).toMatchObject({ id: 'id-3', deadLettered: false, where: { topic, partition: 0, offset: '3' } });
      expect(poisoned[0]!.attempts).toBe(1);

      // Skipping it: the group's committed offset moved to N + 1 while no member runs.
      await admin.setOffsets({ groupId, topic, partitions: [{ partition: 0, offset: '4' }] });
      const again = await run(async () => (await committed(admin, groupId, topic)).get(0) === '6');
      expect(again).toBeUndefined();
      expect(effects).toEqual(['id-0', 'id-1', 'id-2', 'id-4', 'id-5']);
    } finally {
      await admin.disconnect();
    }
  });
});
