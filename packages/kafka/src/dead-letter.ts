import type { PoisonInfo } from '@onceonly/core';
import type { KafkaMessage } from 'kafkajs';
import type { HeaderValue } from './message-id.js';
import type { MessageHeaders, StampableMessage } from './stamp.js';

/**
 * What publishing to a dead-letter topic needs of a producer (kafkajs' and Confluent's fit). The record
 * carries no `acks`: kafkajs sends with `acks: -1` (all in-sync replicas) by default, and Confluent's
 * producer takes `acks` only in its config (default -1) and rejects a record that sets it.
 */
export interface DeadLetterProducer {
  send(record: { topic: string; messages: StampableMessage[] }): Promise<unknown>;
}

/** Diagnostic headers a dead-lettered message carries besides its own. */
export const DLT_HEADERS = {
  /** The typed error's `code` (e.g. `ID_MISSING`, `PAYLOAD_CONFLICT`), else the error's name. */
  code: 'onceonly-dlt-error-code',
  /** The error's message, cut to 256 characters. */
  message: 'onceonly-dlt-error-message',
  topic: 'onceonly-dlt-original-topic',
  partition: 'onceonly-dlt-original-partition',
  offset: 'onceonly-dlt-original-offset',
  /** The original message's timestamp (ms since the epoch, as Kafka gave it). */
  timestamp: 'onceonly-dlt-original-timestamp',
  group: 'onceonly-dlt-group',
  /** Handler runs made by the delivery that gave up (0: it never ran). */
  attempts: 'onceonly-dlt-attempts',
} as const;

/** Where a poison message came from. */
export interface PoisonSource {
  readonly topic: string;
  readonly partition: number;
  readonly message: KafkaMessage;
  readonly group: string;
}

/**
 * Publishes a poison message to its dead-letter topic: the original key, value and headers (so the ID
 * header travels with it and the topic's consumers can dedup), plus {@link DLT_HEADERS}. Resolves once
 * the broker acknowledged it; only then may the offset be committed.
 */
export async function publishDeadLetter(producer: DeadLetterProducer, topic: string, source: PoisonSource, poison: PoisonInfo): Promise<void> {
  const { message } = source;
  const headers: MessageHeaders = {};
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    const kept = keepHeader(value as HeaderValue | readonly HeaderValue[]);
    if (kept !== undefined) headers[name] = kept;
  }
  const error = poison.error as Error & { code?: unknown };
  headers[DLT_HEADERS.code] = typeof error.code === 'string' ? error.code : error.name;
  headers[DLT_HEADERS.message] = error.message.length > 256 ? `${error.message.slice(0, 255)}…` : error.message;
  headers[DLT_HEADERS.topic] = source.topic;
  headers[DLT_HEADERS.partition] = String(source.partition);
  headers[DLT_HEADERS.offset] = message.offset;
  headers[DLT_HEADERS.timestamp] = message.timestamp;
  headers[DLT_HEADERS.group] = source.group;
  headers[DLT_HEADERS.attempts] = String(poison.attempts);
  await producer.send({ topic, messages: [{ key: message.key ?? null, value: message.value ?? null, headers }] });
}

/** A header as a producer can send it: null values (which some producers write) are dropped, arrays keep their non-null items. */
function keepHeader(value: HeaderValue | readonly HeaderValue[]): Buffer | string | (Buffer | string)[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string' || Buffer.isBuffer(value)) return value;
  const items = (value as readonly HeaderValue[]).filter((item): item is Buffer | string => item !== null && item !== undefined);
  return items.length > 0 ? items : undefined;
}
