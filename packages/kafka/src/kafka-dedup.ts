import {
  DedupProcessor,
  InvalidIdError,
  supportsMarks,
  toError,
  type BaseHandlerContext,
  type BatchMessage,
  type DedupStore,
  type HandlerContext,
  type MarkRange,
  type Outcome,
  type PoisonInfo,
  type TxOf,
} from '@onceonly/core';
import { publishDeadLetter } from './dead-letter.js';
import type { ConsumerRunConfig, KafkaMessage } from 'kafkajs';
import { messageId } from './message-id.js';
import { parseKafkaDedupOptions, type KafkaDedupOptions, type ResolvedKafkaDedupOptions } from './options.js';
import { waitWithHeartbeat } from './sleep.js';

/** What a Kafka handler receives besides the message: the dedup context and where the message is. */
export interface KafkaHandlerContext extends HandlerContext<Buffer> {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
}

/**
 * The context a Kafka handler receives with a store whose transaction type is `Tx`: with a
 * transactional store (`PostgresStore`: a `pg` client inside `BEGIN`) it also has `tx`; run the
 * effect's writes on it, and they commit together with the message's completion, or not at all. With
 * any other store (`Tx` is `never`, the default) it is {@link KafkaHandlerContext}, without `tx`.
 */
export type KafkaContext<Tx = never> = KafkaHandlerContext & ([Tx] extends [never] ? unknown : { readonly tx: Tx });

/**
 * Runs a message's effect. Runs once per ID within the window (see the README's guarantees); `Tx` as in
 * {@link KafkaContext}. {@link KafkaDedup}'s methods take a `KafkaHandler<R, TxOf<S>>`, spelled out as
 * its function type: TypeScript would compare two `KafkaHandler`s by their `Tx` alone, as if `tx` were
 * always there, and let a handler that needs `tx` through where there is none (`Tx` is `never`).
 */
export type KafkaHandler<R = unknown, Tx = never> = (message: KafkaMessage, context: KafkaContext<Tx>) => R | Promise<R>;

/**
 * What {@link KafkaDedup.eachBatch} uses of a batch payload. kafkajs' `EachBatchPayload` fits, and so
 * does @confluentinc/kafka-javascript's (which has no `uncommittedOffsets` and a smaller `batch`).
 */
export interface BatchPayloadLike {
  readonly batch: { readonly topic: string; readonly partition: number; readonly messages: readonly KafkaMessage[] };
  resolveOffset(offset: string): void;
  heartbeat(): Promise<void>;
  /** Commits the resolved offsets when the consumer's `autoCommitInterval` / `autoCommitThreshold` say so. */
  commitOffsetsIfNecessary?(): Promise<void>;
  isRunning(): boolean;
  isStale(): boolean;
}

/** What {@link KafkaDedup.eachMessage} uses of a message payload (kafkajs' or Confluent's `EachMessagePayload`). */
export interface MessagePayloadLike {
  readonly topic: string;
  readonly partition: number;
  readonly message: KafkaMessage;
  heartbeat(): Promise<void>;
}

/** An `eachBatch` handler that any KafkaJS-shaped consumer accepts. */
export type BatchHandler = (payload: BatchPayloadLike) => Promise<void>;

/** An `eachMessage` handler that any KafkaJS-shaped consumer accepts. */
export type MessageHandler = (payload: MessagePayloadLike) => Promise<void>;

/** `consumer.run` settings {@link KafkaDedup.batchRunConfig} passes through (the handlers are its own). */
export type BatchRunOptions = Omit<ConsumerRunConfig, 'eachBatch' | 'eachMessage' | 'eachBatchAutoResolve'>;

/** What {@link KafkaDedup.batchRunConfig} returns: your settings, auto-resolve off, and the dedup `eachBatch`. */
export interface BatchRunConfig extends BatchRunOptions {
  eachBatchAutoResolve: false;
  eachBatch: BatchHandler;
}

/** What a batch of one partition needs from the consumer. */
interface PartitionControls {
  readonly resolveOffset: (offset: string) => void;
  readonly heartbeat: () => Promise<void>;
  readonly isActive: () => boolean;
  /** Commits what is resolved, if the consumer's auto-commit settings say so; never throws. */
  readonly commit: () => void;
}

/**
 * Effectively-once consumption for a kafkajs consumer group: wraps `eachBatch` / `eachMessage` so each
 * message ID's handler runs once within the window, offsets are resolved only for completed (or
 * duplicate) messages, and replays are skipped (IDs within the window, the high-water mark beyond it).
 *
 * @example
 * const dedup = new KafkaDedup({ groupId: 'billing', store: new RedisStore({ client }) });
 * const consumer = kafka.consumer({ groupId: 'billing' });
 * await consumer.subscribe({ topics: ['orders'] });
 * await consumer.run(dedup.batchRunConfig(async (message, { id, token }) => charge(message.value!, id, token)));
 * @example
 * // PostgresStore: the handler gets `tx`, one transaction per message; the ledger row and the
 * // message's completion commit together.
 * const dedup = new KafkaDedup({ groupId: 'billing', store: new PostgresStore({ pool }) });
 * await consumer.run(dedup.batchRunConfig(async (message, { tx, id }) => {
 *   await tx.query('INSERT INTO ledger (message_id, body) VALUES ($1, $2)', [id, message.value!.toString()]);
 * }));
 */
export class KafkaDedup<S extends DedupStore = DedupStore> {
  readonly options: Readonly<ResolvedKafkaDedupOptions<S>>;
  /** The dedup scope (the consumer group unless set). */
  readonly scope: string;
  /** The processor underneath: subscribe to its events, read its stats. */
  readonly processor: DedupProcessor<S>;

  /**
   * The store's type `S` comes from `store`: with a transactional store (`PostgresStore`) each message
   * runs in a transaction of its own, handed to the handler as `tx` (typed `TxOf<S>`), and its
   * completion is that transaction's last statement. With any other store, or none, there is no `tx`.
   * @throws {InvalidOptionsError} naming each wrong option.
   */
  constructor(options: KafkaDedupOptions<S>) {
    this.options = parseKafkaDedupOptions(options);
    this.scope = this.options.scope ?? this.options.groupId;
    this.processor = new DedupProcessor<S>({ ...this.options.processor, scope: this.scope, ...(this.options.store ? { store: this.options.store } : {}) });
  }

  /**
   * An `eachBatch` handler. Use it with `eachBatchAutoResolve: false` (or use {@link batchRunConfig}):
   * it resolves offsets itself, and with auto-resolve on, kafkajs would resolve a batch it stopped early.
   *
   * Per chunk of up to `maxClaimBatch` messages, one store round trip claims them (and reads the
   * high-water mark; the next chunk is claimed while this one runs). Handlers run for each new ID, in
   * offset order or `concurrency` at once (per-key order); completions are recorded in coalesced flushes
   * as they finish (advancing the mark), and offsets are resolved over the contiguous completed prefix,
   * committed as it grows when the consumer's `autoCommitInterval` / `autoCommitThreshold` say so.
   * Retryable handler errors are retried in place (`retry`); messages that can never succeed go to
   * `deadLetter`, or stop the batch there (a `poisoned` event). It heartbeats while it runs, waits (with
   * backoff, heartbeating) on a message another consumer holds and while the store is unreachable,
   * stops when the batch goes stale, and on any other failure throws after resolving only the messages
   * before it, so kafkajs commits up to there and redelivers from the failed message.
   *
   * The returned handler asks only for what it uses ({@link BatchPayloadLike}), so it fits kafkajs'
   * `consumer.run` and the KafkaJS-compatible API of @confluentinc/kafka-javascript alike.
   */
  eachBatch<R>(handler: (message: KafkaMessage, context: KafkaContext<TxOf<S>>) => R | Promise<R>): BatchHandler {
    return async (payload) => {
      const { batch, resolveOffset, heartbeat, isRunning, isStale } = payload;
      // One commit at a time; a failed one is retried by kafkajs at the end of the batch (or a rebalance).
      let committing: Promise<void> | undefined;
      const commit = () => {
        if (committing !== undefined || payload.commitOffsetsIfNecessary === undefined) return;
        committing = payload
          .commitOffsetsIfNecessary()
          .catch(() => undefined)
          .finally(() => (committing = undefined));
      };
      await this.#consume(batch.topic, batch.partition, batch.messages, handler as KafkaHandler<R, unknown>, {
        resolveOffset: (offset) => {
          resolveOffset(offset);
          commit();
        },
        heartbeat,
        isActive: () => isRunning() && !isStale(),
        commit,
      });
      await committing;
    };
  }

  /**
   * A run config for `consumer.run`: `eachBatch` with auto-resolve off, plus your other settings.
   * It is assignable to kafkajs' `ConsumerRunConfig` and to Confluent's KafkaJS-compatible one.
   * @example
   * await consumer.run(dedup.batchRunConfig(handler, { partitionsConsumedConcurrently: 3 }));
   */
  batchRunConfig<R>(handler: (message: KafkaMessage, context: KafkaContext<TxOf<S>>) => R | Promise<R>, config: BatchRunOptions = {}): BatchRunConfig {
    return { ...config, eachBatchAutoResolve: false, eachBatch: this.eachBatch(handler) };
  }

  /**
   * An `eachMessage` handler: two store round trips per message. It returns (so kafkajs commits the
   * offset) only once the message is completed or found a duplicate, waits while another consumer
   * holds it, and throws otherwise, so kafkajs redelivers it. Like {@link eachBatch}, it asks only for
   * what it uses ({@link MessagePayloadLike}).
   */
  eachMessage<R>(handler: (message: KafkaMessage, context: KafkaContext<TxOf<S>>) => R | Promise<R>): MessageHandler {
    return async ({ topic, partition, message, heartbeat }) => {
      await this.#consume(topic, partition, [message], handler as KafkaHandler<R, unknown>, { resolveOffset: () => undefined, heartbeat, isActive: () => true, commit: () => undefined });
    };
  }

  /** The high-water mark of completed offsets of (this scope, topic, partition), if the store keeps marks. */
  async markOf(topic: string, partition: number): Promise<MarkRange | undefined> {
    const store = this.processor.store;
    return supportsMarks(store) ? store.getMark({ scope: this.scope, name: markName(topic, partition) }) : undefined;
  }

  /**
   * Forgets the high-water mark of (this scope, topic, partition). Do this when a topic is deleted and
   * created again under the same name: its offsets start over, and the old mark would skip new messages.
   */
  async forgetMark(topic: string, partition: number): Promise<void> {
    const store = this.processor.store;
    if (supportsMarks(store)) await store.deleteMark({ scope: this.scope, name: markName(topic, partition) });
  }

  /** Stops lease heartbeats; closes the store only if it was created here. */
  async close(): Promise<void> {
    await this.processor.close();
  }

  /** `handler` takes `tx` exactly when the store is transactional (the processor gives it then). */
  async #consume<R>(topic: string, partition: number, messages: readonly KafkaMessage[], handler: KafkaHandler<R, unknown>, controls: PartitionControls): Promise<void> {
    const { maxClaimBatch, inProgressMaxWaitMs, heartbeatMs, concurrency, ordering, flush, retry } = this.options;
    let index = 0;
    let waits = 0;
    let storeWaits = 0;
    while (index < messages.length) {
      if (!controls.isActive()) return;
      const slice = index === 0 ? messages : messages.slice(index);
      const inputs = slice.map((message) => this.#input(topic, partition, message));
      // The handler runs once per ID (repeats are answered by their first occurrence).
      const byId = new Map<unknown, KafkaMessage>();
      for (let i = 0; i < slice.length; i++) if (!byId.has(inputs[i]!.id)) byId.set(inputs[i]!.id, slice[i]!);
      const run = (context: BaseHandlerContext<Buffer> & { readonly tx?: unknown }) => {
        const message = byId.get(context.id)!;
        return handler(message, kafkaContext(context, topic, partition, message.offset));
      };

      // A later call continues the mark's run of the previous one, across offsets Kafka left out
      // (transaction markers, compaction).
      const from = index > 0 ? Number(messages[index - 1]!.offset) + 1 : undefined;
      const deadLetter = this.options.deadLetter;
      const { result, heartbeatError } = await this.#withHeartbeats(controls, (isActive) =>
        (this.processor as DedupProcessor).processBatch(inputs, run, {
          shouldContinue: isActive,
          claimChunk: maxClaimBatch,
          concurrency,
          ordering,
          flush,
          retry,
          // Retries wait here, heartbeating, and give up waiting when the batch goes stale.
          wait: async (ms) => {
            await waitWithHeartbeat(ms, heartbeatMs, controls.heartbeat, () => !isActive());
            return isActive();
          },
          // Offsets are resolved as the done prefix grows: only once its completions are acknowledged.
          onDone: (done) => controls.resolveOffset(slice[done - 1]!.offset),
          ...(deadLetter ? { deadLetter: (_message, i, poison) => this.#deadLetter(topic, partition, slice[i]!, poison) } : {}),
          ...this.#mark(topic, partition, slice, from),
        }),
      );
      index += result.done;
      if (heartbeatError !== undefined) throw heartbeatError;
      if (result.done > 0) waits = storeWaits = 0;
      if (result.done === slice.length) continue;

      const stopper: Outcome<R> | undefined = result.outcomes[result.done];
      if (stopper === undefined) {
        if (!controls.isActive()) return; // stopped early: the batch went stale or the consumer is stopping
        continue; // messages left unstarted behind running ones: go on from the done prefix
      }
      if (stopper.status === 'in-progress') {
        // Another consumer holds it (e.g. right after a rebalance): never skip it, never commit past it.
        const delay = Math.min(inProgressMaxWaitMs, stopper.retryAfterMs * 2 ** Math.min(waits++, 6));
        controls.commit();
        await waitWithHeartbeat(delay, heartbeatMs, controls.heartbeat, () => !controls.isActive());
        continue;
      }
      if (stopper.status === 'store-unavailable' || stopper.status === 'lease-lost') {
        // Retriable, and not the message's fault: wait here (heartbeating, with backoff) and go on from the
        // done prefix. Thrown, kafkajs would retry a few times, then crash the consumer and rejoin,
        // rebalancing the whole group, and all of them at once while the store is down.
        const delay = Math.min(inProgressMaxWaitMs, Math.max(10, retry.backoffMs) * 2 ** Math.min(storeWaits++, 16));
        controls.commit();
        await waitWithHeartbeat(delay, heartbeatMs, controls.heartbeat, () => !controls.isActive());
        continue;
      }
      if (stopper.status === 'processed' || stopper.status === 'duplicate' || stopper.status === 'dead-lettered') continue; // not a stopper (never happens)
      throw withWhere(stopper.error, topic, partition, slice[result.done]!.offset);
    }
  }

  /** A message as the processor sees it: its ID (or why it has none), payload, ordering key and coordinates. */
  #input(topic: string, partition: number, message: KafkaMessage): BatchMessage<Buffer> {
    const { header, idSource } = this.options;
    const where = { topic, partition, offset: message.offset };
    const key = message.key === null || message.key === undefined ? null : typeof message.key === 'string' ? message.key : message.key.toString('latin1');
    // With an instrumentation (e.g. @onceonly/otel): the headers carry the producer's trace context, and
    // the messaging attributes say where the message came from. Without one, nothing is built.
    const attributes = this.processor.options.instrumentation === undefined ? undefined : this.#attributes(topic, partition, message.offset);
    const carrier = attributes === undefined ? undefined : message.headers;
    try {
      return { id: messageId(idSource, header, message, topic, partition), payload: message.value ?? undefined, key, where, carrier, attributes };
    } catch (error) {
      // A bad ID is poison like any other: dead-lettered, or the consumer stops at it.
      const idError =
        error instanceof InvalidIdError ? error : new InvalidIdError('ID_INVALID', `the idSource function threw: ${toError(error).message}`);
      return { id: undefined, payload: message.value ?? undefined, key, where, carrier, attributes, idError: withWhere(idError, topic, partition, message.offset) as InvalidIdError };
    }
  }

  /** The OpenTelemetry messaging attributes of a message (the key is left out: it may be personal data). */
  #attributes(topic: string, partition: number, offset: string): Readonly<Record<string, string | number>> {
    return {
      'messaging.system': 'kafka',
      'messaging.destination.name': topic,
      'messaging.consumer.group.name': this.options.groupId,
      'messaging.destination.partition.id': String(partition),
      'messaging.kafka.offset': Number(offset),
    };
  }

  /** Publishes a poison message to its dead-letter topic (acknowledged before its offset is resolved). */
  async #deadLetter(topic: string, partition: number, message: KafkaMessage, poison: PoisonInfo): Promise<void> {
    const deadLetter = this.options.deadLetter!;
    const target = typeof deadLetter.topic === 'function' ? deadLetter.topic(topic) : (deadLetter.topic ?? `${topic}.DLT`);
    await publishDeadLetter(deadLetter.producer, target, { topic, partition, message, group: this.options.groupId }, poison);
  }

  #mark(topic: string, partition: number, chunk: readonly KafkaMessage[], from: number | undefined) {
    if (!this.options.highWaterMark) return {};
    const positions = chunk.map((message) => Number(message.offset));
    if (!positions.every(Number.isSafeInteger)) return {};
    const ref = { scope: this.scope, name: markName(topic, partition) };
    return { mark: { ref, positions, skip: !this.options.reprocess, ...(from !== undefined && Number.isSafeInteger(from) ? { from } : {}) } };
  }

  /** Runs `work` while heartbeating to the group; a failed heartbeat (e.g. a rebalance) stops the work and is handed back. */
  async #withHeartbeats<T>(controls: PartitionControls, work: (isActive: () => boolean) => Promise<T>): Promise<{ result: T; heartbeatError: unknown }> {
    let failure: unknown;
    const timer = setInterval(() => {
      controls.heartbeat().catch((error: unknown) => {
        failure ??= error;
      });
    }, this.options.heartbeatMs);
    try {
      const result = await work(() => failure === undefined && controls.isActive());
      return { result, heartbeatError: failure };
    } finally {
      clearInterval(timer);
    }
  }
}

/** The mark's name within the scope: `<topic>:<partition>` (Kafka topic names never hold `:`). */
export function markName(topic: string, partition: number): string {
  return `${topic}:${partition}`;
}

/** The Kafka handler's context, built field by field (no spread: this runs once per message). */
function kafkaContext(context: BaseHandlerContext<Buffer> & { readonly tx?: unknown }, topic: string, partition: number, offset: string): KafkaContext<unknown> {
  const kafka: { -readonly [K in keyof KafkaHandlerContext]?: KafkaHandlerContext[K] } & { tx?: unknown } = {
    scope: context.scope,
    id: context.id,
    payload: context.payload,
    token: context.token,
    signal: context.signal,
    takeover: context.takeover,
    replayed: false,
    topic,
    partition,
    offset,
  };
  if (context.shadowOf !== undefined) kafka.shadowOf = context.shadowOf;
  if (context.tx !== undefined) kafka.tx = context.tx;
  return kafka as KafkaContext<unknown>;
}

/** Adds where the failure happened to the error, for logs (the error keeps its class and code). */
function withWhere(error: Error, topic: string, partition: number, offset: string): Error {
  const e = toError(error) as Error & { kafka?: { topic: string; partition: number; offset: string } };
  if (Object.isExtensible(e) && e.kafka === undefined) e.kafka = { topic, partition, offset };
  return e;
}
