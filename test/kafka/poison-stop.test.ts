// Without a dead-letter topic, a poison message stops the consumer at its offset (nothing after it is
// committed) and a `poisoned` event says where it is; moving the group's offset past it (what
// `kafka-consumer-groups --reset-offsets --to-offset N+1` does) lets the group go on.
// On both clients (clients.ts). They differ in how they stop: kafkajs stops the consumer for good on the
// non-retriable error (a CRASH event); Confluent's client has no such stop: it seeks back and redelivers
// the message, `poisoned` firing each time, until the partition is paused (here from the event).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RecordedFailureError } from '@onceonly/core';
import { KafkaDedup } from '@onceonly/kafka';
import { clients } from './clients.js';
import { committed, groupName, kafkaClient, newTopic, redisFixture, waitFor } from './kafka-test-context.js';

class TerminalError extends Error {
  override name = 'TerminalError';
}

describe.each(clients)('kafka ($name): a poison message without a dead-letter topic', (client) => {
  let redis: Awaited<ReturnType<typeof redisFixture>>;
  beforeEach(async () => {
    redis = await redisFixture();
  });
  afterEach(async () => {
    await redis?.close();
  });

  it('stops the consumer at its offset (Confluent: redelivered until paused), fires `poisoned` with topic/partition/offset, and the group goes on once its offset is moved past it', { timeout: 90_000 }, async () => {
    const kafka = kafkaClient();
    const topic = await newTopic('poison-stop', 1);
    const groupId = groupName('poison-stop');
    const producer = await client.producer();
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
      const consumer = client.consumer({ groupId });
      let crash: { error: unknown; restart: boolean } | undefined;
      consumer.onCrash((event) => {
        crash = event;
      });
      // Confluent's client would redeliver the poison message for ever: stop its partition on the first `poisoned`.
      let paused = false;
      if (!client.crashes) {
        dedup.processor.on('poisoned', ({ where }) => {
          if (paused || where === undefined) return;
          paused = true;
          consumer.pause([{ topic: String(where['topic']), partitions: [Number(where['partition'])] }]);
        });
      }
      await consumer.connect();
      try {
        await consumer.subscribe({ topics: [topic], fromBeginning: true });
        await consumer.run(
          dedup.batchRunConfig(async (_m, { id }) => {
            if (id === 'id-3') throw new TerminalError('cannot be processed, ever');
            effects.push(id);
          }),
        );
        await waitFor('the consumer to stop, or the end', async () => crash !== undefined || paused || (await until()));
        if (paused) await new Promise((resolve) => setTimeout(resolve, 1_000)); // time for redeliveries, if pausing did not hold it
      } finally {
        await consumer.disconnect();
        await dedup.close();
      }
      return crash;
    };

    try {
      const crash = await run(() => false);
      if (client.crashes) {
        expect(crash?.restart).toBe(false); // stopped for good, not looping
        expect((crash!.error as Error).cause).toBeInstanceOf(RecordedFailureError);
      } else {
        expect(crash).toBeUndefined(); // no CRASH event: it went on redelivering until paused
        expect(poisoned).toHaveLength(1); // paused from the first event: nothing redelivered after it
      }
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
