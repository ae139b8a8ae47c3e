// Poison messages from real producers among good ones on several partitions, with a dead-letter topic:
// every good message processed once, every bad one published to `<topic>.DLT` exactly once with its key,
// value and headers (the ID header kept) plus the onceonly-dlt-* diagnostics, the group never stops,
// and its committed offsets reach the end. A redelivery of the whole topic publishes nothing again.
// On both clients (clients.ts): the consumer and both producers are the client's; the DLT is read back,
// and offsets moved, with kafkajs.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEAD_LETTERED } from '@onceonly/core';
import { DLT_HEADERS, KafkaDedup, replayTopic, stampMessages } from '@onceonly/kafka';
import type { Admin, IHeaders, Kafka, KafkaMessage, Message } from 'kafkajs';
import { createTopic } from '../support/kafka/broker.js';
import { sendWithJavaProducer } from './java-producer.js';
import { clients } from './clients.js';
import { brokers, committed, fastConsumer, groupName, kafkaClient, newTopic, redisFixture, waitFor } from './kafka-test-context.js';

class TerminalError extends Error {
  override name = 'TerminalError';
}

const ID = 'onceonly-id';

/** Every message of `topic` from the beginning, read by a plain consumer of a new group, once `count` are there. */
async function readAll(kafka: Kafka, admin: Admin, topic: string, count: number): Promise<(KafkaMessage & { partition: number })[]> {
  const high = (await admin.fetchTopicOffsets(topic)).reduce((sum, p) => sum + Number(p.high), 0);
  expect(high).toBe(count);
  const consumer = fastConsumer(kafka, groupName('dlt-reader'));
  const seen: (KafkaMessage & { partition: number })[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({ eachMessage: async ({ partition, message }) => void seen.push({ ...message, partition }) });
    await waitFor(`${count} messages on ${topic}`, () => seen.length >= count);
  } finally {
    await consumer.disconnect();
  }
  return seen;
}

const text = (value: IHeaders[string]) => (value === undefined ? undefined : Array.isArray(value) ? value.map(String) : String(value));

describe.each(clients)('kafka ($name): poison messages and a dead-letter topic', (client) => {
  let redis: Awaited<ReturnType<typeof redisFixture>>;
  beforeEach(async () => {
    redis = await redisFixture();
  });
  afterEach(async () => {
    await redis?.close();
  });

  it('missing and null ID headers, a conflict, a terminal and an always-retriable failure among good messages on 3 partitions: good ones once, bad ones dead-lettered once with their headers, offsets committed to the end, a redelivery publishes nothing again', { timeout: 120_000 }, async () => {
    const kafka = kafkaClient();
    const topic = await newTopic('poison', 3);
    const dlt = `${topic}.DLT`;
    await createTopic(brokers(), dlt, 1);
    const groupId = groupName('poison');

    const good = stampMessages(Array.from({ length: 60 }, (_, i): Message => ({ key: `g${i % 12}`, value: `good-${i}` })));
    const goodIds = good.map((m) => String(m.headers![ID]));
    const bad: Record<string, Message> = {
      missing: { key: 'bad-missing', value: 'no ID header', headers: { trace: 'keep-me' } },
      conflictA: { key: 'conflict', value: 'payload A', headers: { [ID]: 'conflict-1' } },
      conflictB: { key: 'conflict', value: 'payload B', headers: { [ID]: 'conflict-1', trace: 'b' } },
      terminal: { key: 'terminal', value: 'can never work', headers: { [ID]: 'terminal-1' } },
      retriable: { key: 'retriable', value: 'downstream always down', headers: { [ID]: 'retriable-1' } },
    };
    const producer = await client.producer();
    try {
      await producer.send({ topic, messages: [...good.slice(0, 30), bad.missing!, bad.conflictA!, bad.terminal!] });
      // kafkajs cannot send a null header value; the Java client can (partition 0).
      await sendWithJavaProducer(topic, ID, [{ value: 'null ID header', header: [null] }]);
      await producer.send({ topic, messages: [...good.slice(30), bad.conflictB!, bad.retriable!] });
    } finally {
      await producer.disconnect();
    }

    const dltProducer = await client.producer();
    const admin = kafka.admin();
    await admin.connect();
    const effects = new Map<string, number>();
    const runs = new Map<string, number>();
    const poisoned: { id: string; deadLettered: boolean; where: unknown }[] = [];
    const crashes: unknown[] = [];
    const consume = async (): Promise<void> => {
      const dedup = new KafkaDedup({
        groupId,
        store: redis.store,
        concurrency: 4,
        deadLetter: { producer: dltProducer.raw },
        processor: { isTerminal: (error) => error instanceof TerminalError },
      });
      dedup.processor.on('poisoned', ({ id, deadLettered, where }) => poisoned.push({ id, deadLettered, where }));
      const consumer = client.consumer({ groupId });
      consumer.onCrash(({ error }) => crashes.push(error)); // kafkajs only: Confluent's client has no CRASH event
      await consumer.connect();
      try {
        await consumer.subscribe({ topics: [topic], fromBeginning: true });
        await consumer.run(
          dedup.batchRunConfig(async (message, { id }) => {
            runs.set(id, (runs.get(id) ?? 0) + 1);
            if (id === 'terminal-1') throw new TerminalError('this message can never be processed');
            if (id === 'retriable-1') throw new Error('downstream unavailable');
            effects.set(id, (effects.get(id) ?? 0) + 1);
            return String(message.value);
          }),
        );
        const highs = await admin.fetchTopicOffsets(topic);
        await waitFor('every offset committed', async () => {
          const offsets = await committed(admin, groupId, topic);
          return highs.every(({ partition, high }) => offsets.get(partition) === high);
        });
      } finally {
        await consumer.disconnect();
        await dedup.close();
      }
    };

    try {
      await consume();
      expect(crashes).toEqual([]); // the group never stopped
      for (const id of [...goodIds, 'conflict-1']) expect(effects.get(id)).toBe(1);
      expect(effects.size).toBe(goodIds.length + 1);
      expect(runs.get('terminal-1')).toBe(1);
      expect(runs.get('retriable-1')).toBe(5); // retried in place: maxAttempts 5 by default
      expect(poisoned.map((p) => p.deadLettered)).toEqual([true, true, true, true, true]);
      expect(await redis.store.get(groupId, 'terminal-1')).toMatchObject({ state: 'failed', error: DEAD_LETTERED });
      expect(await redis.store.get(groupId, 'retriable-1')).toMatchObject({ state: 'failed', error: DEAD_LETTERED });
      expect(await redis.store.get(groupId, 'conflict-1')).toMatchObject({ state: 'completed' }); // the conflict did not touch it

      const dead = await readAll(kafka, admin, dlt, 5);
      const byValue = new Map(dead.map((m) => [String(m.value), m]));
      expect([...byValue.keys()].sort()).toEqual(['can never work', 'downstream always down', 'no ID header', 'null ID header', 'payload B']);
      const expectations: [string, string | null, string, string][] = [
        // value, key, error code, attempts
        ['no ID header', 'bad-missing', 'ID_MISSING', '0'],
        ['null ID header', null, 'ID_MISSING', '0'],
        ['payload B', 'conflict', 'PAYLOAD_CONFLICT', '0'],
        ['can never work', 'terminal', 'TerminalError', '1'],
        ['downstream always down', 'retriable', 'Error', '5'],
      ];
      for (const [value, key, code, attempts] of expectations) {
        const message = byValue.get(value)!;
        const headers = message.headers!;
        expect(message.key === null ? null : String(message.key)).toBe(key);
        expect(text(headers[DLT_HEADERS.code])).toBe(code);
        expect(text(headers[DLT_HEADERS.attempts])).toBe(attempts);
        expect(text(headers[DLT_HEADERS.topic])).toBe(topic);
        expect(text(headers[DLT_HEADERS.group])).toBe(groupId);
        expect(String(headers[DLT_HEADERS.message]).length).toBeGreaterThan(0);
        expect(Number(text(headers[DLT_HEADERS.timestamp]))).toBeGreaterThan(0);
        // Where it came from, and the poisoned event said the same.
        const where = { topic, partition: Number(text(headers[DLT_HEADERS.partition])), offset: text(headers[DLT_HEADERS.offset]) };
        expect(poisoned).toContainEqual(expect.objectContaining({ where }));
      }
      // The original headers travel with it: the ID header (so the DLT's consumers can dedup) and the rest.
      expect(text(byValue.get('payload B')!.headers![ID])).toBe('conflict-1');
      expect(text(byValue.get('payload B')!.headers!['trace'])).toBe('b');
      expect(text(byValue.get('can never work')!.headers![ID])).toBe('terminal-1');
      expect(text(byValue.get('downstream always down')!.headers![ID])).toBe('retriable-1');
      expect(text(byValue.get('no ID header')!.headers!['trace'])).toBe('keep-me');
      if (client.name === 'kafkajs') expect(byValue.get('null ID header')!.headers![ID]).toBeUndefined(); // a null value is not re-sent
      // Confluent's consumer hands a null header value over as an empty Buffer, and its producer sends an
      // empty Buffer as a null value: the copy carries the null header as it came.
      else expect(byValue.get('null ID header')!.headers![ID]).toBeNull();

      // A redelivery of everything (as after a crash between the publish and the commit, or a replay):
      // nothing runs again and nothing is published again.
      await replayTopic(admin, { groupId, topic, from: 'earliest' });
      const runsBefore = new Map(runs);
      await consume();
      expect(crashes).toEqual([]);
      expect(runs).toEqual(runsBefore);
      expect([...effects.values()].every((n) => n === 1)).toBe(true);
      const high = (await admin.fetchTopicOffsets(dlt)).reduce((sum, p) => sum + Number(p.high), 0);
      expect(high).toBe(5);
    } finally {
      await Promise.all([dltProducer.disconnect(), admin.disconnect()]);
    }
  });
});
