import { parseOptions, type DedupProcessorOptions, type DedupStore } from '@onceonly/core';
import type { DeadLetterProducer } from './dead-letter.js';
import { z } from 'zod';
import { DEFAULT_ID_HEADER, type IdSource } from './message-id.js';

const isFunction = (value: unknown) => typeof value === 'function';

export const kafkaDedupOptionsSchema = z.strictObject({
  /** The consumer group; the dedup scope unless `scope` is given. */
  groupId: z.string().min(1, 'must be a non-empty string'),
  /** The dedup scope. @defaultValue the `groupId` */
  scope: z.string().min(1, 'must be a non-empty string').optional(),
  /** Shared by every consumer of the group, e.g. a `RedisStore`. @defaultValue a `MemoryStore` (one process only) */
  store: z.custom<DedupStore>((v) => typeof v === 'object' && v !== null, 'must be a DedupStore').optional(),
  /** Where IDs come from: the header (default), `'offset'`, or a function of the message. @defaultValue 'header' */
  idSource: z
    .union([z.literal('header'), z.literal('offset'), z.custom<Extract<IdSource, (...args: never[]) => unknown>>(isFunction, 'must be "header", "offset" or a function')])
    .default('header'),
  /** Header that carries the ID. @defaultValue 'onceonly-id' */
  header: z.string().min(1, 'must be a non-empty string').default(DEFAULT_ID_HEADER),
  /**
   * Keep a per (group, topic, partition) high-water mark of completed offsets next to the ID records
   * (stores that support marks), so replays of offsets at or below it are skipped even after their IDs
   * expired. @defaultValue true
   */
  highWaterMark: z.boolean().default(true),
  /** Run messages inside the high-water mark again (a deliberate re-run). IDs still protect the window. @defaultValue false */
  reprocess: z.boolean().default(false),
  /**
   * Most messages claimed in one store round trip; a longer batch is handled in chunks, the next one
   * claimed while the current one runs. @defaultValue 500
   */
  maxClaimBatch: z.number().int().min(1).max(10_000).default(500),
  /**
   * Longest wait between tries of a message that cannot go on yet: another consumer holds it
   * (in-progress), or the store is unreachable (the batch waits in place, heartbeating). @defaultValue 2000
   */
  inProgressMaxWaitMs: z.number().int().min(10).default(2_000),
  /** How often a running batch heartbeats to the group. @defaultValue 1000 */
  heartbeatMs: z.number().int().min(10).default(1_000),
  /**
   * Handlers running at once per partition. With more than 1, `ordering` decides which may overlap;
   * offsets are committed over the contiguous completed prefix only. @defaultValue 1
   */
  concurrency: z.number().int().min(1).max(10_000).default(1),
  /**
   * With `concurrency` > 1: `'key'` runs messages with the same Kafka key in order and different keys
   * in parallel (messages without a key are unordered); `'none'` runs any message as soon as a slot is
   * free. @defaultValue 'key'
   */
  ordering: z.enum(['key', 'none']).default('key'),
  /**
   * Completions are recorded as handlers finish, coalesced: a flush goes out when `maxPending` wait or
   * the oldest waited `maxDelayMs`; while `maxPending` wait behind a flush, no handler starts. A crash
   * re-runs at most the running handlers plus the completions not yet acknowledged: fewer than
   * `concurrency` + 2 × `maxPending` per partition batch, whatever `maxClaimBatch`.
   * @defaultValue { maxPending: 100, maxDelayMs: 10 }
   */
  flush: z
    .strictObject({ maxPending: z.number().int().min(1).max(100_000).optional(), maxDelayMs: z.number().int().min(0).max(60_000).optional() })
    .default({}),
  /**
   * Retryable handler errors are retried in place with exponential backoff (heartbeating meanwhile)
   * up to `maxAttempts` runs; after that the message is poison: dead-lettered with `deadLetter`,
   * else the consumer stops at it. @defaultValue { maxAttempts: 5, backoffMs: 100, maxBackoffMs: 5000 }
   */
  retry: z
    .strictObject({
      maxAttempts: z.number().int().min(1).max(1_000).default(5),
      backoffMs: z.number().int().min(0).max(3_600_000).default(100),
      maxBackoffMs: z.number().int().min(0).max(3_600_000).default(5_000),
    })
    .default({ maxAttempts: 5, backoffMs: 100, maxBackoffMs: 5_000 }),
  /**
   * Where messages that can never succeed go (bad ID, payload conflict, remembered failure,
   * dead-lettered takeover, terminal handler error, retries exhausted): published to a dead-letter
   * topic with their key, value and headers plus `onceonly-dlt-*` diagnostic headers, recorded as
   * failed, and committed past, so the group never stops. Without it, such a message stops the
   * consumer at its offset and a `poisoned` event fires.
   */
  deadLetter: z
    .strictObject({
      /**
       * A connected producer (kafkajs or Confluent's KafkaJS API). Its sends must be acknowledged by all
       * in-sync replicas: kafkajs' default; for Confluent's, keep its `acks` config at the default -1.
       */
      producer: z.custom<DeadLetterProducer>((v) => typeof (v as { send?: unknown } | null)?.send === 'function', 'must be a producer with send()'),
      /** The dead-letter topic of a source topic. @defaultValue `<topic>.DLT` */
      topic: z.union([z.string().min(1), z.custom<(topic: string) => string>(isFunction, 'must be a string or a function')]).optional(),
    })
    .optional(),
  /** Options of the underlying `DedupProcessor` (window, lease, fingerprint, policies, ...). */
  processor: z.custom<Omit<DedupProcessorOptions, 'scope' | 'store'>>((v) => typeof v === 'object' && v !== null, 'must be an object').optional(),
});

/**
 * Options of {@link KafkaDedup}. `S` is the store's type, inferred from `store`: with a transactional
 * store (`PostgresStore`) the handlers' context has `tx`.
 */
export type KafkaDedupOptions<S extends DedupStore = DedupStore> = Omit<z.input<typeof kafkaDedupOptionsSchema>, 'store'> & {
  /** Shared by every consumer of the group, e.g. a `RedisStore`. @defaultValue a `MemoryStore` (one process only) */
  store?: S | undefined;
};
export type ResolvedKafkaDedupOptions<S extends DedupStore = DedupStore> = Omit<z.output<typeof kafkaDedupOptionsSchema>, 'store'> & { store?: S | undefined };

/** @throws {InvalidOptionsError} naming each wrong option. */
export function parseKafkaDedupOptions<S extends DedupStore>(options: KafkaDedupOptions<S>): ResolvedKafkaDedupOptions<S> {
  return parseOptions(kafkaDedupOptionsSchema, options, 'KafkaDedup') as ResolvedKafkaDedupOptions<S>;
}
