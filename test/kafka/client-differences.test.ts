// What differs between kafkajs and Confluent's KafkaJS-compatible client (clients.ts) where onceonly
// meets them, on the real broker (the README's Kafka "Clients" says the same):
// - eachBatch sizes: kafkajs hands over what a fetch returned; Confluent's batches hold at most
//   `js.consumer.max.batch.size` messages (32 by default);
// - a non-retriable error thrown by eachBatch: kafkajs stops the consumer for good (CRASH, restart
//   false); Confluent's client has no CRASH event: it seeks back and redelivers the message;
// - heartbeats: Confluent's `heartbeat()` does nothing (librdkafka heartbeats on its own thread),
//   kafkajs' is sent by KafkaDedup while a batch runs: either way a handler longer than the session
//   timeout keeps the partition;
// - Confluent's producer rewrites the messages given to `send()` in place: re-sending the same
//   objects throws; `withMessageIds` sends copies.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidIdError } from '@onceonly/core';
import { KafkaDedup, stampMessages, withMessageIds, type BatchPayloadLike } from '@onceonly/kafka';
import { clients, confluent, kafkajs, type TestClient } from './clients.js';
import { committed, groupName, kafkaClient, newTopic, redisFixture, waitFor } from './kafka-test-context.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('kafka: where the two clients differ', () => {
  let redis: Awaited<ReturnType<typeof redisFixture>>;
  beforeEach(async () => {
    redis = await redisFixture();
  });
  afterEach(async () => {
    await redis?.close();
  });

  /** Consumes `topic` with `client` and KafkaDedup until `count` messages are done (processed or duplicate); returns the batch sizes and the outcomes. */
  async function consume(
    client: TestClient,
    topic: string,
    count: number,
    options: { maxBatchSize?: number; sessionTimeout?: number; autoCommitInterval?: number; settleMs?: number; handler?: () => Promise<void> } = {},
  ) {
    const groupId = groupName('differences');
    const dedup = new KafkaDedup({ groupId, store: redis.store });
    const outcomes: string[] = [];
    dedup.processor.on('outcome', ({ status }) => outcomes.push(status));
    const batches: number[] = [];
    const staleBatches: number[] = [];
    const { handler, settleMs, ...consumerOptions } = options;
    const consumer = client.consumer({ groupId, ...consumerOptions });
    await consumer.connect();
    try {
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      const eachBatch = dedup.eachBatch(handler ?? (async () => undefined));
      await consumer.run({
        eachBatchAutoResolve: false,
        eachBatch: async (payload: BatchPayloadLike) => {
          batches.push(payload.batch.messages.length);
          await eachBatch(payload);
          if (payload.isStale()) staleBatches.push(batches.length - 1);
        },
      });
      await waitFor(`${count} messages done`, () => outcomes.filter((s) => s === 'processed' || s === 'duplicate').length >= count, 60_000);
      if (settleMs) await sleep(settleMs); // time for a redelivery, if the group took the partition away
    } finally {
      await consumer.disconnect();
      await dedup.close();
    }
    return { batches, outcomes, staleBatches };
  }

  async function produce(client: TestClient, topic: string, count: number) {
    const producer = await client.producer();
    await producer.send({ topic, messages: stampMessages(Array.from({ length: count }, (_, i) => ({ value: `m${i}` }))) }).finally(() => producer.disconnect());
  }

  it("eachBatch sizes: kafkajs' follow the fetch; Confluent's are capped by js.consumer.max.batch.size (32 by default)", { timeout: 90_000 }, async () => {
    const topic = await newTopic('batch-size', 1);
    await produce(kafkajs, topic, 500);
    const viaKafkajs = await consume(kafkajs, topic, 500);
    const viaConfluent = await consume(confluent, topic, 500);
    const viaConfluent200 = await consume(confluent, topic, 500, { maxBatchSize: 200 });
    expect(Math.max(...viaKafkajs.batches)).toBeGreaterThan(200);
    expect(Math.max(...viaConfluent.batches)).toBe(32);
    expect(Math.max(...viaConfluent200.batches)).toBe(200);
    for (const run of [viaKafkajs, viaConfluent, viaConfluent200]) expect(run.outcomes.filter((s) => s !== 'processed')).toEqual([]);
  });

  it.each(clients)('$name: a handler running for twice the session timeout keeps its partition (kafkajs: KafkaDedup heartbeats; Confluent: librdkafka does)', { timeout: 60_000 }, async (client) => {
    const topic = await newTopic('heartbeat', 1);
    await produce(client, topic, 3);
    let runs = 0;
    const handler = async () => {
      if (runs++ === 0) await sleep(4_000);
    };
    // Had the member been dropped (no heartbeat for 2 s), the commit after the batch would fail, and the
    // rejoined consumer would get the messages again from the start: duplicates within the settle time.
    const { outcomes, staleBatches } = await consume(client, topic, 3, { sessionTimeout: 2_000, autoCommitInterval: 500, settleMs: 3_000, handler });
    expect(runs).toBe(3);
    expect(outcomes).toEqual(['processed', 'processed', 'processed']); // no redelivery, nothing held by a lost member
    expect(staleBatches).toEqual([]); // no rebalance took the partition while the handler ran
  });

  it.each(clients)('$name: a non-retriable error (a message without an ID, no dead-letter topic): kafkajs stops the consumer, Confluent redelivers it', { timeout: 60_000 }, async (client) => {
    const topic = await newTopic('no-crash', 1);
    const groupId = groupName('no-crash');
    const producer = await client.producer();
    await producer
      .send({ topic, messages: [{ value: 'good', headers: { 'onceonly-id': 'good-0' } }, { value: 'no ID' }, { value: 'good', headers: { 'onceonly-id': 'good-2' } }] })
      .finally(() => producer.disconnect());
    const dedup = new KafkaDedup({ groupId, store: redis.store });
    let poisoned = 0;
    dedup.processor.on('poisoned', () => void poisoned++);
    let crash: { error: unknown; restart: boolean } | undefined;
    const consumer = client.consumer({ groupId });
    consumer.onCrash((event) => {
      crash = event;
    });
    const admin = kafkaClient().admin();
    await Promise.all([consumer.connect(), admin.connect()]);
    try {
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      await consumer.run(dedup.batchRunConfig(async (_m, { id }) => void (await redis.apply(id))));
      if (client.crashes) {
        await waitFor('the consumer to stop', () => crash !== undefined);
        expect(crash!.restart).toBe(false);
        expect((crash!.error as Error).cause).toBeInstanceOf(InvalidIdError);
        await sleep(1_000);
        expect(poisoned).toBe(1); // stopped: not delivered again
      } else {
        await waitFor('the message redelivered (poisoned each time)', () => poisoned >= 3);
        expect(crash).toBeUndefined();
      }
      await waitFor('the offset committed up to the bad message', async () => (await committed(admin, groupId, topic)).get(0) === '1');
    } finally {
      await Promise.all([consumer.disconnect(), admin.disconnect()]);
      await dedup.close();
    }
    expect([...(await redis.effects()).keys()]).toEqual(['good-0']); // never past it
  });

  it.each(clients)('$name: re-sending the same stamped message objects (a retry of a whole send) works through withMessageIds; raw, only kafkajs takes them again', { timeout: 60_000 }, async (client) => {
    const topic = await newTopic('resend', 1);
    const { raw } = await client.producer();
    try {
      const stamped = stampMessages([{ value: 'once' }]);
      const id = String(stamped[0]!.headers['onceonly-id']);
      const wrapped = withMessageIds(raw);
      await wrapped.send({ topic, messages: stamped });
      await wrapped.send({ topic, messages: stamped }); // copies each time: the objects stay as stamped
      expect(stamped[0]!.headers['onceonly-id']).toBe(id);
      await raw.send({ topic, messages: stamped }); // the client's own send, given the objects themselves
      if (client.name === 'kafkajs') await raw.send({ topic, messages: stamped });
      else await expect(raw.send({ topic, messages: stamped })).rejects.toThrow('Header value must be a string or buffer');
      // Every copy that went out carries the one ID: a consumer runs it once.
      const copies = client.name === 'kafkajs' ? 4 : 3;
      const { outcomes } = await consume(kafkajs, topic, copies);
      expect(outcomes.filter((s) => s === 'processed')).toHaveLength(1);
      expect(outcomes.filter((s) => s === 'duplicate')).toHaveLength(copies - 1);
    } finally {
      await raw.disconnect();
    }
  });
});
