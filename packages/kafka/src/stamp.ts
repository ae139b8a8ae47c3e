import { contentId, uuidv7, validateId } from '@onceonly/core';
import type { Message, Producer, ProducerBatch, ProducerRecord } from 'kafkajs';
import { DEFAULT_ID_HEADER } from './message-id.js';

/** How a producer makes the ID of a message that has none. */
export type IdGenerator =
  /** A UUIDv7 per message (the default). */
  | 'uuidv7'
  /** SHA-256 of the value's bytes (and the key): equal messages get equal IDs, even across producers. */
  | 'content'
  /** Your own: a business key, say. */
  | ((message: Message) => string);

export interface StampOptions {
  /** Header that carries the ID. @defaultValue 'onceonly-id' */
  header?: string;
  /** @defaultValue 'uuidv7' */
  id?: IdGenerator;
}

function generate(generator: IdGenerator, message: Message): string {
  if (generator === 'uuidv7') return uuidv7();
  if (generator === 'content') {
    const key = message.key ?? '';
    const value = message.value ?? '';
    return contentId([Buffer.from(key).toString('base64'), Buffer.from(value).toString('base64')]);
  }
  return validateId(generator(message), { label: 'generated message ID' });
}

/**
 * Returns copies of `messages` with the ID header set on every message that lacks one (messages that
 * have it keep theirs). Stamp once, then send (and re-send) the stamped messages: the ID survives every
 * retry.
 *
 * @example
 * const messages = stampMessages([{ value: JSON.stringify(order) }]);
 * await producer.send({ topic: 'orders', messages }); // a retry re-sends the same ID
 */
export function stampMessages(messages: readonly Message[], options: StampOptions = {}): Message[] {
  const header = options.header ?? DEFAULT_ID_HEADER;
  const generator = options.id ?? 'uuidv7';
  return messages.map((message) => {
    if (message.headers?.[header] !== undefined) return message;
    return { ...message, headers: { ...message.headers, [header]: generate(generator, message) } };
  });
}

/**
 * Wraps a kafkajs producer so that `send` and `sendBatch` stamp every message lacking the ID header.
 * The stamp is made before the first attempt, so kafkajs' own retries (and an idempotent producer)
 * re-send the same ID. To retry a whole `send` yourself with the same IDs, stamp first with
 * {@link stampMessages} and re-send those messages.
 *
 * @example
 * const producer = withMessageIds(kafka.producer({ idempotent: true }));
 * await producer.connect();
 * await producer.send({ topic: 'orders', messages: [{ value: '{"orderId":42}' }] });
 */
export function withMessageIds<T extends Producer>(producer: T, options: StampOptions = {}): T {
  const send = (record: ProducerRecord) => producer.send({ ...record, messages: stampMessages(record.messages, options) });
  const sendBatch = (batch: ProducerBatch) =>
    producer.sendBatch({
      ...batch,
      topicMessages: batch.topicMessages?.map((t) => ({ ...t, messages: stampMessages(t.messages, options) })),
    });
  return Object.assign(Object.create(producer) as T, { send, sendBatch });
}
