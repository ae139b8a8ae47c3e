// Type-level checks (run by `tsc -p packages/kafka/tsconfig.json`, i.e. `npm run typecheck`): the public
// signatures ask only for what the code uses, so Confluent's KafkaJS-compatible producer and consumer
// payloads fit, and kafkajs users keep their exact types. The runtime halves run the same objects.
import { describe, expect, expectTypeOf, it } from 'vitest';
import { MemoryStore } from '@onceonly/core';
import { Kafka, logLevel, type ConsumerRunConfig, type EachBatchHandler, type EachMessageHandler, type Producer } from 'kafkajs';
import { KafkaDedup, replayTopic, withMessageIds } from '@onceonly/kafka';
import * as confluent from './confluent-shapes.js';

/** A batch payload exactly as Confluent declares it: no `uncommittedOffsets`, no `batch.offsetLag`. */
function confluentPayload(ids: string[], start = 0) {
  const resolved: string[] = [];
  const payload: confluent.EachBatchPayload = {
    batch: {
      topic: 'orders',
      partition: 0,
      highWatermark: String(ids.length),
      messages: ids.map((id, i) => ({ key: null, value: Buffer.from(id), timestamp: '0', attributes: 0, offset: String(start + i), headers: { 'onceonly-id': id } })),
      isEmpty: () => ids.length === 0,
      firstOffset: () => String(start),
      lastOffset: () => String(start + ids.length - 1),
    },
    resolveOffset: (offset) => void resolved.push(offset),
    heartbeat: async () => undefined,
    pause: () => () => undefined,
    commitOffsetsIfNecessary: async () => undefined,
    isRunning: () => true,
    isStale: () => false,
  };
  return { payload, resolved };
}

describe("Confluent's KafkaJS-compatible API", () => {
  it('withMessageIds takes its producer and returns the same type', async () => {
    const producer: confluent.Producer = new confluent.PrivateFieldsProducer();
    const wrapped = withMessageIds(producer);
    expectTypeOf(wrapped).toEqualTypeOf<confluent.Producer>();
    await wrapped.connect();
    await wrapped.send({ topic: 't', messages: [{ value: 'a' }] });
    expect((producer as confluent.PrivateFieldsProducer).sent[0]!.messages[0]!.headers).toHaveProperty('onceonly-id');
  });

  it('batchRunConfig, eachBatch and eachMessage fit its consumer.run config and handlers', async () => {
    const dedup = new KafkaDedup({ groupId: 'g', store: new MemoryStore() });
    const seen: string[] = [];
    const handler = async (message: confluent.KafkaMessage) => void seen.push(message.offset);
    const config: confluent.ConsumerRunConfig = dedup.batchRunConfig(handler, { partitionsConsumedConcurrently: 2 });
    const eachBatch: confluent.EachBatchHandler = dedup.eachBatch(handler);
    const eachMessage: confluent.EachMessageHandler = dedup.eachMessage(handler);
    expect(config.eachBatchAutoResolve).toBe(false);

    const first = confluentPayload(['a', 'b', 'a']);
    await config.eachBatch!(first.payload);
    expect(seen).toEqual(['0', '1']);
    expect(first.resolved).toEqual(['0', '1', '2']);
    const second = confluentPayload(['c'], 3);
    await eachBatch(second.payload);
    expect(second.resolved).toEqual(['3']);
    const message: confluent.KafkaMessage = { key: null, value: Buffer.from('d'), timestamp: '0', attributes: 0, offset: '9', headers: { 'onceonly-id': 'd' } };
    await eachMessage({ topic: 'orders', partition: 0, message, heartbeat: async () => undefined, pause: () => () => undefined });
    expect(seen).toEqual(['0', '1', '3', '9']);
  });
});

describe("Confluent's producer as the dead-letter producer", () => {
  it('publishes poison through it: no per-send `acks` (which it rejects), and its in-place rewrite never touches the consumed message', async () => {
    const producer = new confluent.PrivateFieldsProducer();
    await producer.connect();
    const dedup = new KafkaDedup({ groupId: 'g', store: new MemoryStore(), deadLetter: { producer } });
    const { payload, resolved } = confluentPayload(['a', 'b']);
    const headers = { trace: 'keep-me' }; // the second message has no ID header: poison
    payload.batch.messages[1] = { key: null, value: Buffer.from('b'), timestamp: '0', attributes: 0, offset: '1', headers };
    await dedup.eachBatch(async () => undefined)(payload);
    expect(resolved.at(-1)).toBe('1'); // published, so committed past
    expect(producer.sent).toHaveLength(1);
    const [published] = producer.sent[0]!.messages;
    expect(published).toMatchObject({ key: null, value: Buffer.from('b'), headers: { trace: 'keep-me', 'onceonly-dlt-error-code': 'ID_MISSING' } });
    expect(headers).toEqual({ trace: 'keep-me' });
  });
});

describe("Confluent's admin", () => {
  it('cannot move offsets: replayTopic says to use a kafkajs admin instead of failing on a missing method', async () => {
    // What its KafkaJS admin has of the offset API: reads only (lib/kafkajs/_admin.js, 1.10).
    const admin = { fetchTopicOffsets: async () => [], fetchTopicOffsetsByTimestamp: async () => [], fetchOffsets: async () => [] };
    await expect(replayTopic(admin as never, { groupId: 'g', topic: 't', from: 'earliest' })).rejects.toThrow(/no resetOffsets\/setOffsets.*use a kafkajs admin/);
  });
});

describe('kafkajs', () => {
  it('keeps its own types: Producer in, Producer out; run config and handlers assignable', async () => {
    // Never connected: nothing goes on the network.
    const producer = new Kafka({ clientId: 'types', brokers: ['127.0.0.1:9'], logLevel: logLevel.NOTHING }).producer();
    const wrapped = withMessageIds(producer);
    expectTypeOf(wrapped).toEqualTypeOf<Producer>();
    expect(wrapped.events).toBe(producer.events);
    expect(wrapped.isIdempotent()).toBe(false);

    const dedup = new KafkaDedup({ groupId: 'g' });
    const config: ConsumerRunConfig = dedup.batchRunConfig(async () => undefined, { autoCommitThreshold: 10 });
    const eachBatch: EachBatchHandler = dedup.eachBatch(async () => undefined);
    const eachMessage: EachMessageHandler = dedup.eachMessage(async () => undefined);
    expect(config).toMatchObject({ eachBatchAutoResolve: false, autoCommitThreshold: 10 });
    expect([typeof eachBatch, typeof eachMessage]).toEqual(['function', 'function']);
  });
});
