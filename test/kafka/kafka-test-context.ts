// Shared helpers of the Kafka integration tests: the run's broker, random topics and groups, a
// Redis ledger of effects, and waiting helpers (nothing sleeps where it can wait for a condition).
import { Redis } from 'ioredis';
import { Kafka, Partitioners, logLevel, type Admin, type Message, type Producer } from 'kafkajs';
import { inject } from 'vitest';
import { uuidv7 } from '@onceonly/core';
import { RedisStore } from '@onceonly/redis';
import { createTopic, randomName } from '../support/kafka/broker.js';

/** The run's broker; throws the reason when none could be resolved (the test fails, never skips). */
export function brokers(): string[] {
  const list = inject('kafkaBrokers');
  if (list.length === 0) throw new Error(`Kafka integration tests need a broker: ${inject('kafkaError') || 'none resolved'}`);
  return list;
}

export function kafkaClient(clientId = 'onceonly-test'): Kafka {
  return new Kafka({ clientId, brokers: brokers(), logLevel: logLevel.NOTHING, retry: { initialRetryTime: 100, retries: 8 } });
}

/** A new topic with `partitions` partitions, leaders elected. */
export async function newTopic(prefix: string, partitions: number): Promise<string> {
  const topic = randomName(prefix);
  await createTopic(brokers(), topic, partitions);
  return topic;
}

export const groupName = (prefix: string) => randomName(`${prefix}-group`);

/** A connected producer with the Java-compatible partitioner. */
export async function connectProducer(kafka: Kafka): Promise<Producer> {
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false });
  await producer.connect();
  return producer;
}

/** Sends in chunks (one request per chunk), with kafkajs' producer or a clients.ts one. */
export async function sendAll(producer: { send(record: { topic: string; messages: Message[] }): Promise<unknown> }, topic: string, messages: readonly Message[], chunk = 1_000): Promise<void> {
  for (let i = 0; i < messages.length; i += chunk) await producer.send({ topic, messages: messages.slice(i, i + chunk) });
}

/**
 * Sends at a steady pace: a chunk of `chunk` messages every `everyMs` (one request each), telling
 * `onSent` how many have gone out after each chunk.
 */
export async function sendPaced(
  producer: { send(record: { topic: string; messages: Message[] }): Promise<unknown> },
  topic: string,
  messages: readonly Message[],
  pace: { chunk: number; everyMs: number },
  onSent: (sent: number) => void,
): Promise<void> {
  for (let i = 0; i < messages.length; i += pace.chunk) {
    const started = Date.now();
    await producer.send({ topic, messages: messages.slice(i, i + pace.chunk) });
    onSent(Math.min(messages.length, i + pace.chunk));
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, pace.everyMs - (Date.now() - started))));
  }
}

/** A fast consumer of `groupId`. */
export function fastConsumer(kafka: Kafka, groupId: string) {
  return kafka.consumer({ groupId, sessionTimeout: 6_000, heartbeatInterval: 500, maxWaitTimeInMs: 100, rebalanceTimeout: 10_000, retry: { initialRetryTime: 100, retries: 5 } });
}

/** A connected client for the run's Redis, a store on it with a random prefix, and a ledger key. */
export async function redisFixture() {
  const client = new Redis(inject('redisUrl'), { maxRetriesPerRequest: 1, lazyConnect: true });
  await client.connect();
  const prefix = `onceonly-kafka-test-${uuidv7()}`;
  const store = new RedisStore({ client, prefix });
  const ledger = `${prefix}:ledger`;
  return {
    client,
    store,
    prefix,
    ledger,
    /** Records one application of the effect of `id`. */
    apply: (id: string) => client.hincrby(ledger, id, 1),
    /** Effects per ID. */
    effects: async () => new Map(Object.entries(await client.hgetall(ledger)).map(([id, n]) => [id, Number(n)])),
    close: () => client.quit(),
  };
}

/** Waits until `condition()` holds, polling; fails with `what` after `timeoutMs`. */
export async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The group's committed offsets of `topic`, by partition (`-1`: none). */
export async function committed(admin: Admin, groupId: string, topic: string): Promise<Map<number, string>> {
  const [entry] = await admin.fetchOffsets({ groupId, topics: [topic] });
  return new Map((entry?.partitions ?? []).map(({ partition, offset }) => [partition, offset]));
}

/** Sum of the group's committed offsets over `topic` (each partition's "next offset"). */
export async function committedTotal(admin: Admin, groupId: string, topic: string): Promise<number> {
  let total = 0;
  for (const offset of (await committed(admin, groupId, topic)).values()) total += Math.max(0, Number(offset));
  return total;
}

/**
 * Runs one consumer of `groupId` over `topic`, on `client` (kafkajs or Confluent's, see clients.ts),
 * until `expectedDone` done outcomes and every offset committed.
 */
export async function consumeAll(options: {
  kafka: Kafka;
  client: import('./clients.js').TestClient;
  dedup: import('@onceonly/kafka').KafkaDedup;
  groupId: string;
  topic: string;
  expectedDone: number;
  handler: import('@onceonly/kafka').KafkaHandler;
}): Promise<{ outcomes: Map<string, number> }> {
  const { kafka, client, dedup, groupId, topic, expectedDone, handler } = options;
  const outcomes = new Map<string, number>();
  let done = 0;
  const off = dedup.processor.on('outcome', (outcome) => {
    const key = outcome.status === 'duplicate' && outcome.belowMark ? 'below-mark' : outcome.status;
    outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    if (outcome.status === 'processed' || outcome.status === 'duplicate') done++;
  });
  const consumer = client.consumer({ groupId });
  const admin = kafka.admin();
  await Promise.all([consumer.connect(), admin.connect()]);
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run(dedup.batchRunConfig(handler));
    const high = (await admin.fetchTopicOffsets(topic)).reduce((sum, p) => sum + Number(p.high), 0);
    await waitFor(`${expectedDone} done messages of ${topic} (${done} so far)`, () => done >= expectedDone);
    await waitFor(`the offsets of ${topic} committed`, async () => (await committedTotal(admin, groupId, topic)) === high);
  } finally {
    off();
    await Promise.all([consumer.disconnect(), admin.disconnect()]);
  }
  return { outcomes };
}
