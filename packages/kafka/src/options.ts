import { parseOptions, type DedupProcessorOptions, type DedupStore } from '@onceonly/core';
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
  /** Most messages claimed in one store round trip; a longer batch is handled in chunks. @defaultValue 500 */
  maxClaimBatch: z.number().int().min(1).max(10_000).default(500),
  /** Longest wait between retries of a message another consumer holds (in-progress). @defaultValue 2000 */
  inProgressMaxWaitMs: z.number().int().min(10).default(2_000),
  /** How often a running batch heartbeats to the group. @defaultValue 1000 */
  heartbeatMs: z.number().int().min(10).default(1_000),
  /** Options of the underlying `DedupProcessor` (window, lease, fingerprint, policies, ...). */
  processor: z.custom<Omit<DedupProcessorOptions, 'scope' | 'store'>>((v) => typeof v === 'object' && v !== null, 'must be an object').optional(),
});

/** Options of {@link KafkaDedup}. */
export type KafkaDedupOptions = z.input<typeof kafkaDedupOptionsSchema>;
export type ResolvedKafkaDedupOptions = z.output<typeof kafkaDedupOptionsSchema>;

/** @throws {InvalidOptionsError} naming each wrong option. */
export function parseKafkaDedupOptions(options: KafkaDedupOptions): ResolvedKafkaDedupOptions {
  return parseOptions(kafkaDedupOptionsSchema, options, 'KafkaDedup');
}
