import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Message } from 'kafkajs';
import { KafkaDedup, replayTopic, stampMessages, type KafkaDedupOptions } from '@onceonly/kafka';
import { clients } from './clients.js';
import { consumeAll, groupName, kafkaClient, newTopic, redisFixture, sendAll } from './kafka-test-context.js';

// Consumed with each client; the group's offsets are moved back with kafkajs' admin (Confluent's has no resetOffsets).
describe.each(clients)('kafka ($name): topic replays', (client) => {
  let redis: Awaited<ReturnType<typeof redisFixture>>;
  beforeEach(async () => {
    redis = await redisFixture();
  });
  afterEach(async () => {
    await redis?.close();
  });

  /** Produces, consumes everything once, resets the group to the earliest offsets, and consumes again. */
  async function consumeTwice(prefix: string, messages: Message[], first: Omit<KafkaDedupOptions, 'groupId'>, second = first, between?: (groupId: string) => Promise<void>) {
    const kafka = kafkaClient();
    const topic = await newTopic(prefix, 3);
    const groupId = groupName(prefix);
    const producer = await client.producer();
    try {
      await sendAll(producer, topic, messages);
    } finally {
      await producer.disconnect();
    }
    const handler = async (_m: unknown, { id }: { id: string }) => void (await redis.apply(id));
    const run1 = await consumeAll({ kafka, client, dedup: new KafkaDedup({ ...first, groupId }), groupId, topic, expectedDone: messages.length, handler });
    const afterFirst = await redis.effects();
    await between?.(groupId);
    const admin = kafka.admin();
    await admin.connect();
    try {
      const offsets = await replayTopic(admin, { groupId, topic, from: 'earliest' });
      expect(offsets.every((p) => p.offset === '0')).toBe(true);
    } finally {
      await admin.disconnect();
    }
    const dedup2 = new KafkaDedup({ ...second, groupId });
    const run2 = await consumeAll({ kafka, client, dedup: dedup2, groupId, topic, expectedDone: messages.length, handler });
    return { afterFirst, run1, run2, afterSecond: await redis.effects(), dedup: dedup2, topic };
  }

  it('re-reading 5 000 stamped messages from the earliest offset applies none again', async () => {
    const messages = stampMessages(Array.from({ length: 5_000 }, (_, i) => ({ value: `stamped ${i}` })));
    const { afterFirst, afterSecond, run2 } = await consumeTwice('replay-stamped', messages, { store: redis.store, highWaterMark: false });
    const ids = messages.map((m) => String(m.headers!['onceonly-id']));
    expect(ids.every((id) => afterFirst.get(id) === 1)).toBe(true);
    expect(ids.every((id) => afterSecond.get(id) === 1)).toBe(true); // 0 re-applied
    expect(run2.outcomes.get('processed') ?? 0).toBe(0);
    expect(run2.outcomes.get('duplicate')).toBe(5_000); // protected by the IDs (the mark is off here)
  });

  it('unstamped messages with offset IDs are protected too', async () => {
    const messages = Array.from({ length: 1_000 }, (_, i) => ({ value: `unstamped ${i}` }));
    const { afterFirst, afterSecond, run2 } = await consumeTwice('replay-offsets', messages, { store: redis.store, idSource: 'offset', highWaterMark: false });
    expect(afterFirst.size).toBe(1_000);
    expect([...afterSecond.values()].every((n) => n === 1)).toBe(true);
    expect(afterSecond).toEqual(afterFirst);
    expect(run2.outcomes.get('processed') ?? 0).toBe(0);
  });

  it('beyond the window the high-water mark still skips; reprocess runs them again on purpose', async () => {
    const messages = Array.from({ length: 1_000 }, (_, i) => ({ value: `windowed ${i}` }));
    const windowed = { store: redis.store, idSource: 'offset' as const, processor: { windowMs: 1_500, leaseMs: 1_000 } };
    let sampleExpired = false;
    const { afterFirst, afterSecond, run2, dedup, topic } = await consumeTwice('replay-hwm', messages, windowed, windowed, async (groupId) => {
      await new Promise((resolve) => setTimeout(resolve, 1_700)); // the window passes: every ID record expires
      const anyId = [...(await redis.effects()).keys()][0]!;
      sampleExpired = (await redis.store.get(groupId, anyId)) === undefined;
    });
    expect(sampleExpired).toBe(true);
    expect(afterFirst.size).toBe(1_000);
    expect(afterSecond).toEqual(afterFirst); // 0 re-applied although the IDs were gone
    expect(run2.outcomes.get('below-mark')).toBe(1_000);
    const marks = await Promise.all([0, 1, 2].map((p) => dedup.markOf(topic, p)));
    expect(marks.reduce((sum, m) => sum + (m ? m.high - m.low + 1 : 0), 0)).toBe(1_000);

    // A deliberate re-run: reprocess ignores the mark (the IDs have expired again meanwhile).
    await new Promise((resolve) => setTimeout(resolve, 1_700));
    const kafka = kafkaClient();
    const admin = kafka.admin();
    await admin.connect();
    await replayTopic(admin, { groupId: dedup.options.groupId, topic, from: { timestamp: 0 } }).finally(() => admin.disconnect());
    const rerun = new KafkaDedup({ ...windowed, groupId: dedup.options.groupId, reprocess: true });
    const run3 = await consumeAll({ kafka, client, dedup: rerun, groupId: dedup.options.groupId, topic, expectedDone: 1_000, handler: async (_m, { id }) => void (await redis.apply(id)) });
    expect(run3.outcomes.get('processed')).toBe(1_000);
    expect([...(await redis.effects()).values()].every((n) => n === 2)).toBe(true);

  });
});
