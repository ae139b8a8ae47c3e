import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KafkaDedup, readHeaderId, stampMessages } from '@onceonly/kafka';
import { clients } from './clients.js';
import { consumeAll, groupName, kafkaClient, newTopic, redisFixture, sendAll } from './kafka-test-context.js';

describe.each(clients)('kafka ($name): producer retries', (client) => {
  let redis: Awaited<ReturnType<typeof redisFixture>>;
  beforeAll(async () => {
    redis = await redisFixture();
  });
  afterAll(async () => {
    await redis?.close();
  });

  it('every message sent twice with the same stamped ID is applied once', async () => {
    const kafka = kafkaClient();
    const topic = await newTopic('producer-retry', 3);
    const groupId = groupName('producer-retry');
    const messages = stampMessages(Array.from({ length: 1_000 }, (_, i) => ({ value: JSON.stringify({ n: i }) })));
    const producer = await client.producer();
    try {
      await sendAll(producer, topic, messages); // the first attempt
      await sendAll(producer, topic, messages); // a retry of every send, same stamps
    } finally {
      await producer.disconnect();
    }
    const dedup = new KafkaDedup({ groupId, store: redis.store });
    const { outcomes } = await consumeAll({ kafka, client, dedup, groupId, topic, expectedDone: 2_000, handler: async (_m, { id }) => redis.apply(id) });

    const effects = await redis.effects();
    expect(effects.size).toBe(1_000);
    expect([...effects.values()].every((n) => n === 1)).toBe(true);
    expect(new Set(messages.map((m) => readHeaderId(m.headers, 'onceonly-id')))).toEqual(new Set(effects.keys()));
    expect(outcomes.get('processed')).toBe(1_000);
    expect((outcomes.get('duplicate') ?? 0) + (outcomes.get('below-mark') ?? 0)).toBe(1_000);
  });
});
