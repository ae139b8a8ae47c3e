/**
 * `@onceonly/kafka`: effectively-once consumer groups and safe topic replays for kafkajs and for the
 * KafkaJS-compatible API of Confluent's client (@confluentinc/kafka-javascript).
 *
 * @example
 * import { KafkaDedup, withMessageIds } from '@onceonly/kafka';
 *
 * const producer = withMessageIds(kafka.producer()); // stamps an `onceonly-id` header (UUIDv7)
 * const dedup = new KafkaDedup({ groupId: 'billing', store });
 * await consumer.run(dedup.batchRunConfig(async (message, { id, token }) => charge(message, id, token)));
 *
 * @packageDocumentation
 */
export {
  KafkaDedup,
  markName,
  type BatchHandler,
  type BatchPayloadLike,
  type BatchRunConfig,
  type BatchRunOptions,
  type KafkaContext,
  type KafkaHandler,
  type KafkaHandlerContext,
  type MessageHandler,
  type MessagePayloadLike,
} from './kafka-dedup.js';
export { kafkaDedupOptionsSchema, type KafkaDedupOptions, type ResolvedKafkaDedupOptions } from './options.js';
export { DEFAULT_ID_HEADER, messageId, readHeaderId, type HeadersLike, type HeaderValue, type IdSource } from './message-id.js';
export {
  stampMessages,
  withMessageIds,
  type IdGenerator,
  type MessageHeaders,
  type StampableBatch,
  type StampableMessage,
  type StampableProducer,
  type StampableRecord,
  type StampableSender,
  type StampOptions,
} from './stamp.js';
export { replayTopic, type ReplayAdmin, type ReplayFrom, type ReplayOptions } from './replay.js';
export { DLT_HEADERS, type DeadLetterProducer } from './dead-letter.js';
