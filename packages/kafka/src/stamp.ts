import { contentId, InvalidOptionsError, uuidv7, validateId } from '@onceonly/core';
import { DEFAULT_ID_HEADER } from './message-id.js';

/** Headers of an outgoing message: kafkajs' `IHeaders` (Confluent's KafkaJS-compatible API uses the same). */
export interface MessageHeaders {
  [key: string]: Buffer | string | (Buffer | string)[] | undefined;
}

/** What stamping reads and writes of an outgoing message; kafkajs' and Confluent's `Message` both fit. */
export interface StampableMessage {
  key?: Buffer | string | null;
  value: Buffer | string | null;
  headers?: MessageHeaders;
}

/** What stamping needs of a `send` argument (kafkajs' and Confluent's `ProducerRecord`). */
export interface StampableRecord {
  readonly messages: readonly StampableMessage[];
}

/** What stamping needs of a `sendBatch` argument (kafkajs' and Confluent's `ProducerBatch`). */
export interface StampableBatch {
  readonly topicMessages?: readonly { readonly messages: readonly StampableMessage[] }[];
}

/** Something that sends messages: a producer, or a transaction of one. */
export interface StampableSender {
  send(record: StampableRecord): Promise<unknown>;
  sendBatch?(batch: StampableBatch): Promise<unknown>;
}

/**
 * The members {@link withMessageIds} uses, so any KafkaJS-shaped producer fits: kafkajs' `Producer`,
 * and @confluentinc/kafka-javascript's KafkaJS-compatible one (which has no `events`, `on`, ...).
 */
export interface StampableProducer extends StampableSender {
  transaction?(): Promise<StampableSender>;
}

/** How a producer makes the ID of a message that has none. */
export type IdGenerator =
  /** A UUIDv7 per message (the default). */
  | 'uuidv7'
  /** SHA-256 of the value's bytes (and the key): equal messages get equal IDs, even across producers. */
  | 'content'
  /** Your own: a business key, say. */
  | ((message: StampableMessage) => string);

export interface StampOptions {
  /** Header that carries the ID. @defaultValue 'onceonly-id' */
  header?: string;
  /** @defaultValue 'uuidv7' */
  id?: IdGenerator;
  /**
   * Called once per message with its (copied) headers as it is stamped, to add the producer's trace
   * context: `injectTraceContext` of `@onceonly/otel` writes `traceparent` (and `tracestate`), so the
   * consumer's span links to the producer's. A message that already carries a `traceparent` keeps it.
   * @defaultValue none
   */
  inject?: (headers: MessageHeaders) => void;
}

function generate(generator: IdGenerator, message: StampableMessage): string {
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
 * have it keep theirs). Every message and its headers are copied, so a client that rewrites headers in
 * place never changes the caller's objects. Stamp once, then send (and re-send) the stamped messages:
 * the ID survives every retry.
 *
 * @example
 * const messages = stampMessages([{ value: JSON.stringify(order) }]);
 * await producer.send({ topic: 'orders', messages }); // a retry re-sends the same ID
 */
export function stampMessages<M extends StampableMessage>(messages: readonly M[], options: StampOptions = {}): (M & { headers: MessageHeaders })[] {
  const header = options.header ?? DEFAULT_ID_HEADER;
  const generator = options.id ?? 'uuidv7';
  const inject = options.inject;
  if (inject !== undefined && typeof inject !== 'function') throw new InvalidOptionsError('"inject" must be a function of the headers');
  return messages.map((message) => {
    const headers: MessageHeaders = {};
    for (const [name, value] of Object.entries(message.headers ?? {})) headers[name] = Array.isArray(value) ? [...value] : value;
    // A null value cannot be sent by kafkajs and reads as missing on the consumer: stamp over it.
    if (headers[header] == null) headers[header] = generate(generator, message);
    if (inject !== undefined && headers['traceparent'] == null) inject(headers);
    return { ...message, headers };
  });
}

/**
 * Wraps a producer so that every send path stamps each message lacking the ID header: `send`,
 * `sendBatch`, and the `send` / `sendBatch` of the transactions it opens (`producer.transaction()`).
 * The stamp is made before the first attempt, so the client's own retries (and an idempotent producer)
 * re-send the same ID. To retry a whole `send` yourself with the same IDs, stamp first with
 * {@link stampMessages} and re-send those messages. The caller's messages are never modified.
 *
 * Works with kafkajs' producer and with @confluentinc/kafka-javascript's KafkaJS-compatible one: the
 * wrapper delegates, so every other member is the producer's own, called on the producer itself
 * (Confluent's keeps its state in private `#fields`).
 *
 * @example
 * const producer = withMessageIds(kafka.producer({ idempotent: true }));
 * await producer.connect();
 * await producer.send({ topic: 'orders', messages: [{ value: '{"orderId":42}' }] });
 */
export function withMessageIds<T extends StampableProducer>(producer: T, options: StampOptions = {}): T {
  const overrides: Record<string, unknown> = stampingSends(producer, options);
  const { transaction } = producer;
  if (typeof transaction === 'function') {
    // kafkajs returns a separate transaction object; Confluent returns the producer itself. Either way
    // its sends must be stamped too.
    overrides['transaction'] = async () => withMessageIds(await transaction.call(producer), options);
  }
  return delegate(producer, overrides);
}

function stampingSends(sender: StampableSender, options: StampOptions): Record<string, unknown> {
  const stamp = <M extends StampableMessage>(messages: readonly M[]) => stampMessages(messages, options);
  const overrides: Record<string, unknown> = {
    send: (record: StampableRecord) => sender.send({ ...record, messages: stamp(record.messages) }),
  };
  const { sendBatch } = sender;
  if (typeof sendBatch === 'function') {
    overrides['sendBatch'] = (batch: StampableBatch) =>
      sendBatch.call(sender, batch.topicMessages === undefined ? batch : { ...batch, topicMessages: batch.topicMessages.map((t) => ({ ...t, messages: stamp(t.messages) })) });
  }
  return overrides;
}

type AnyFunction = (...args: unknown[]) => unknown;

/**
 * A stand-in for `target` with some members replaced: every other property is read from `target`
 * itself and its methods are bound to it. A prototype-based wrapper (`Object.create(target)`) would
 * call them with the wrapper as `this`, which breaks classes with private `#fields`.
 */
function delegate<T extends object>(target: T, overrides: Readonly<Record<string, unknown>>): T {
  // One bound function per method, so `wrapped.on === wrapped.on` (e.g. to remove a listener).
  const bound = new WeakMap<AnyFunction, AnyFunction>();
  return new Proxy(target, {
    get(t, key) {
      if (typeof key === 'string' && Object.hasOwn(overrides, key)) return overrides[key];
      const value: unknown = Reflect.get(t, key, t);
      if (typeof value !== 'function') return value;
      let fn = bound.get(value as AnyFunction);
      if (fn === undefined) bound.set(value as AnyFunction, (fn = (value as AnyFunction).bind(t)));
      return fn;
    },
    set: (t, key, value) => Reflect.set(t, key, value, t),
  });
}
