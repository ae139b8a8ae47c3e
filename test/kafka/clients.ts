// The two KafkaJS-shaped clients the Kafka suites run against, behind the small surface the tests use:
// kafkajs, and @confluentinc/kafka-javascript's KafkaJS-compatible API (librdkafka underneath). Run a
// suite on both with `describe.each(clients)('kafka ($name): …', (client) => …)`.
//
// Admin calls (committed offsets, setOffsets, replayTopic) stay on kafkajs' admin in every suite:
// Confluent's admin has no resetOffsets/setOffsets (see the README's "Clients").
//
// Confluent's client is an optional dependency of this workspace (a node-gyp build, see
// scripts/ensure-services.mjs): loaded on first use, and a suite that needs it fails, never skips,
// saying how to install it.
import { createRequire } from 'node:module';
import { Kafka, Partitioners, logLevel, type Consumer as KafkaJsConsumer, type Message } from 'kafkajs';
import type { BatchPayloadLike, DeadLetterProducer, MessagePayloadLike, StampableProducer } from '@onceonly/kafka';
import { brokers } from './kafka-test-context.js';

export type ClientName = 'kafkajs' | 'confluent';

/** The consumer settings the suites vary; the rest are the fast test settings (6 s session, 100 ms fetch wait). */
export interface ConsumerOptions {
  readonly groupId: string;
  /**
   * Commit resolved offsets every this many ms while batches run. kafkajs takes it in `run()`,
   * Confluent's client only in the consumer's config (its `run()` rejects it): given here, each
   * client gets it where it wants it.
   */
  readonly autoCommitInterval?: number;
  /** Confluent only: `js.consumer.max.batch.size` (its default: 32 messages per `eachBatch`). kafkajs' batches follow the fetch. */
  readonly maxBatchSize?: number;
  readonly sessionTimeout?: number;
}

/** `consumer.run` settings both clients accept (KafkaDedup's handlers ask only for {@link BatchPayloadLike} / {@link MessagePayloadLike}). */
export interface RunConfig {
  readonly eachBatch?: (payload: BatchPayloadLike) => Promise<void>;
  readonly eachBatchAutoResolve?: boolean;
  readonly eachMessage?: (payload: MessagePayloadLike) => Promise<void>;
  readonly partitionsConsumedConcurrently?: number;
}

export interface TestConsumer {
  connect(): Promise<void>;
  /** Both clients read from the beginning (Confluent's client takes `fromBeginning` in its config, so it is always on here). */
  subscribe(subscription: { topics: string[]; fromBeginning?: true }): Promise<void>;
  run(config: RunConfig): Promise<void>;
  /** Stops fetching these partitions (both clients: call it once the group is joined, e.g. from a handler or event). */
  pause(topics: { topic: string; partitions: number[] }[]): void;
  disconnect(): Promise<void>;
  /** kafkajs' `consumer.events.CRASH`. Confluent's client has no such event: the listener is never called. */
  onCrash(listener: (crash: { error: unknown; restart: boolean }) => void): void;
}

export interface TestProducer {
  /** Sends `messages` as they are, never stamping; the caller's objects are never changed (see {@link confluent}). */
  send(record: { topic: string; messages: readonly Message[] }): Promise<unknown>;
  disconnect(): Promise<void>;
  /** The client's own producer, e.g. for `withMessageIds` or KafkaDedup's `deadLetter`. */
  readonly raw: StampableProducer & DeadLetterProducer & { disconnect(): Promise<void> };
}

export interface TestClient {
  readonly name: ClientName;
  /** Whether a consumer stops for good on a non-retriable error, with a CRASH event (kafkajs), or seeks back and redelivers (Confluent). */
  readonly crashes: boolean;
  /** A connected producer. */
  producer(): Promise<TestProducer>;
  consumer(options: ConsumerOptions): TestConsumer;
}

const SESSION_TIMEOUT = 6_000;

// ------------------------------------------------------------------------------------------ kafkajs

function kafkajsClient(): Kafka {
  return new Kafka({ clientId: 'onceonly-test', brokers: brokers(), logLevel: logLevel.NOTHING, retry: { initialRetryTime: 100, retries: 8 } });
}

export const kafkajs: TestClient = {
  name: 'kafkajs',
  crashes: true,
  async producer() {
    const producer = kafkajsClient().producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false });
    await producer.connect();
    return { send: (record) => producer.send({ topic: record.topic, messages: [...record.messages] }), disconnect: () => producer.disconnect(), raw: producer };
  },
  consumer(options) {
    const consumer: KafkaJsConsumer = kafkajsClient().consumer({
      groupId: options.groupId,
      sessionTimeout: options.sessionTimeout ?? SESSION_TIMEOUT,
      heartbeatInterval: 500,
      maxWaitTimeInMs: 100,
      rebalanceTimeout: 10_000,
      retry: { initialRetryTime: 100, retries: 5 },
    });
    return {
      connect: () => consumer.connect(),
      subscribe: ({ topics }) => consumer.subscribe({ topics, fromBeginning: true }),
      run: (config) =>
        // kafkajs' handler types are its own payloads; KafkaDedup's handlers take any KafkaJS-shaped one.
        consumer.run({ ...(config as Parameters<KafkaJsConsumer['run']>[0]), ...(options.autoCommitInterval === undefined ? {} : { autoCommitInterval: options.autoCommitInterval }) }),
      pause: (topics) => consumer.pause(topics),
      disconnect: () => consumer.disconnect(),
      onCrash: (listener) => void consumer.on(consumer.events.CRASH, ({ payload }) => listener({ error: payload.error, restart: payload.restart })),
    };
  },
};

// ---------------------------------------------------------------------------------------- Confluent

/** What the tests use of `require('@confluentinc/kafka-javascript').KafkaJS` (declared here: the package is optional). */
interface ConfluentKafkaJS {
  Kafka: new (config: { kafkaJS: Record<string, unknown> }) => {
    producer(config: Record<string, unknown>): ConfluentProducer;
    consumer(config: Record<string, unknown>): ConfluentConsumer;
  };
  logLevel: { NOTHING: number };
}
type ConfluentProducer = StampableProducer & DeadLetterProducer & { connect(): Promise<void>; disconnect(): Promise<void> };
interface ConfluentConsumer {
  connect(): Promise<void>;
  subscribe(subscription: { topics: string[] }): Promise<void>;
  run(config: RunConfig): Promise<void>;
  pause(topics: { topic: string; partitions: number[] }[]): unknown;
  disconnect(): Promise<void>;
}

export const CONFLUENT_PACKAGE = '@confluentinc/kafka-javascript';

let confluentModule: ConfluentKafkaJS | undefined;

/**
 * Confluent's KafkaJS API, loaded from this workspace. Throws, saying how to install it, when it is
 * missing or was built for another Node version (it is a node-gyp addon, not N-API).
 */
export function confluentKafkaJS(): ConfluentKafkaJS {
  if (confluentModule) return confluentModule;
  try {
    const loaded = createRequire(import.meta.url)(CONFLUENT_PACKAGE) as { KafkaJS: ConfluentKafkaJS };
    return (confluentModule = loaded.KafkaJS);
  } catch (error) {
    throw new Error(
      `The Kafka suites run against ${CONFLUENT_PACKAGE} too, and it does not load on node ${process.version} (ABI ${process.versions.modules}): ` +
        `${String((error as Error).message).split('\n')[0]}\n` +
        'Install or rebuild it for this Node: `node scripts/ensure-services.mjs` (as root on Debian/Ubuntu it installs the build tools; ' +
        `it builds from source with CKJS_LINKING=dynamic), or by hand: CKJS_LINKING=dynamic npm rebuild ${CONFLUENT_PACKAGE} --build-from-source ` +
        '(needs g++, make, python3; see the README, Kafka, "Clients").',
      { cause: error },
    );
  }
}

function confluentClient(): InstanceType<ConfluentKafkaJS['Kafka']> {
  const { Kafka: ConfluentKafka, logLevel: levels } = confluentKafkaJS();
  return new ConfluentKafka({ kafkaJS: { clientId: 'onceonly-test', brokers: brokers(), logLevel: levels.NOTHING } });
}

/**
 * Confluent's producer rewrites the messages given to `send()` in place (string values to Buffers,
 * headers to librdkafka's `[{ name: value }]` list), so sending the same message objects again
 * sends garbage headers or throws. Like `withMessageIds`, this copies every message first: the
 * suites re-send their stamped messages (producer retries, replays).
 */
function copyMessages(messages: readonly Message[]): Message[] {
  return messages.map((message) => ({ ...message, ...(message.headers ? { headers: { ...message.headers } } : {}) }));
}

export const confluent: TestClient = {
  name: 'confluent',
  crashes: false,
  async producer() {
    // acks -1 (its default, set per producer: Confluent's send() rejects a per-send `acks`); no
    // linger, so an awaited send() returns at once.
    const producer = confluentClient().producer({ kafkaJS: { allowAutoTopicCreation: false, acks: -1 }, 'linger.ms': 0 });
    await producer.connect();
    return { send: (record) => producer.send({ topic: record.topic, messages: copyMessages(record.messages) }), disconnect: () => producer.disconnect(), raw: producer };
  },
  consumer(options) {
    const consumer = confluentClient().consumer({
      kafkaJS: {
        groupId: options.groupId,
        fromBeginning: true,
        sessionTimeout: options.sessionTimeout ?? SESSION_TIMEOUT,
        heartbeatInterval: 500,
        maxWaitTimeInMs: 100,
        rebalanceTimeout: 10_000,
        // kafkajs commits at the end of every batch; this client only every autoCommitInterval (5 s by
        // default): 1 s keeps the suites' waits for committed offsets short.
        autoCommitInterval: options.autoCommitInterval ?? 1_000,
      },
      ...(options.maxBatchSize === undefined ? {} : { 'js.consumer.max.batch.size': options.maxBatchSize }),
    });
    return {
      connect: () => consumer.connect(),
      subscribe: ({ topics }) => consumer.subscribe({ topics }),
      run: (config) => consumer.run(config),
      pause: (topics) => void consumer.pause(topics),
      disconnect: () => consumer.disconnect(),
      onCrash: () => undefined,
    };
  },
};

/** Both clients, for `describe.each`. */
export const clients: readonly TestClient[] = [kafkajs, confluent];
