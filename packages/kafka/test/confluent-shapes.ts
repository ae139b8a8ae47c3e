// The parts of @confluentinc/kafka-javascript's KafkaJS-compatible API (types/kafkajs.d.ts) that
// onceonly meets, copied as they are declared there: the package needs a native build (an optional
// dependency of the integration tests, which run the real client on the real broker: test/kafka/clients.ts),
// so these unit tests check against its shapes instead. What matters: its producer is a class with
// private `#fields`, has no `isIdempotent`/`events`/`on`, returns itself from `transaction()`, rejects
// a per-send `acks`, and rewrites the messages given to `send()` in place; its `EachBatchPayload` has
// no `uncommittedOffsets`.

export interface IHeaders {
  [key: string]: Buffer | string | (Buffer | string)[] | undefined;
}

export interface Message {
  key?: Buffer | string | null;
  value: Buffer | string | null;
  partition?: number;
  headers?: IHeaders;
  timestamp?: string;
}

export interface ProducerRecord {
  topic: string;
  messages: Message[];
}

export interface TopicMessages {
  topic: string;
  messages: Message[];
}

export interface ProducerBatch {
  topicMessages?: TopicMessages[];
}

export interface RecordMetadata {
  topicName: string;
  partition: number;
  errorCode: number;
  offset?: string;
}

export type Transaction = Producer;

export type Producer = {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  send(record: ProducerRecord): Promise<RecordMetadata[]>;
  sendBatch(batch: ProducerBatch): Promise<RecordMetadata[]>;
  flush(args?: { timeout?: number }): Promise<void>;
  transaction(): Promise<Transaction>;
  commit(): Promise<void>;
  abort(): Promise<void>;
  isActive(): boolean;
};

interface MessageSetEntry {
  key: Buffer | null;
  value: Buffer | null;
  timestamp: string;
  attributes: number;
  offset: string;
  size: number;
  headers?: never;
  leaderEpoch?: number;
}

interface RecordBatchEntry {
  key: Buffer | null;
  value: Buffer | null;
  timestamp: string;
  attributes: number;
  offset: string;
  headers: IHeaders;
  size?: never;
  leaderEpoch?: number;
}

export type KafkaMessage = MessageSetEntry | RecordBatchEntry;

export type Batch = {
  topic: string;
  partition: number;
  highWatermark: string;
  messages: KafkaMessage[];
  isEmpty(): boolean;
  firstOffset(): string | null;
  lastOffset(): string;
};

export interface EachMessagePayload {
  topic: string;
  partition: number;
  message: KafkaMessage;
  heartbeat(): Promise<void>;
  pause(): () => void;
}

export interface EachBatchPayload {
  batch: Batch;
  resolveOffset(offset: string): void;
  heartbeat(): Promise<void>;
  pause(): () => void;
  commitOffsetsIfNecessary(): Promise<void>;
  isRunning(): boolean;
  isStale(): boolean;
}

export type EachBatchHandler = (payload: EachBatchPayload) => Promise<void>;
export type EachMessageHandler = (payload: EachMessagePayload) => Promise<void>;

export type ConsumerRunConfig = {
  eachBatchAutoResolve?: boolean;
  partitionsConsumedConcurrently?: number;
  eachMessage?: EachMessageHandler;
  eachBatch?: EachBatchHandler;
};

/**
 * A producer built like Confluent's: state in private `#fields`, so calling its methods with any
 * `this` but the instance throws `Cannot read private member #state`. Its `send()` does what the real
 * one (lib/kafkajs/_producer.js, 1.10) does besides producing: rejects `acks`, `timeout` and
 * `compression` in the record (they are producer settings there), and rewrites each message in place:
 * `partition` -1, a string value to a Buffer, `timestamp` a number, headers to librdkafka's
 * `[{ name: value }]` list. Sending the same message objects again then throws, as the real one does
 * ("Header value must be a string or buffer"). `sent` keeps what each send carried, as given.
 */
export class PrivateFieldsProducer implements Producer {
  #state: 'disconnected' | 'connected' = 'disconnected';
  #inTransaction = false;
  readonly sent: { readonly kind: 'send' | 'sendBatch'; readonly transactional: boolean; readonly messages: Message[] }[] = [];

  get state(): string {
    return this.#state;
  }

  async connect(): Promise<void> {
    this.#state = 'connected';
  }

  async disconnect(): Promise<void> {
    this.#state = 'disconnected';
  }

  async send(record: ProducerRecord): Promise<RecordMetadata[]> {
    return this.#record('send', [record]);
  }

  async sendBatch(batch: ProducerBatch): Promise<RecordMetadata[]> {
    return this.#record('sendBatch', batch.topicMessages ?? []);
  }

  async flush(): Promise<void> {
    this.#connected();
  }

  /** Like Confluent's: the producer itself is the transaction. */
  async transaction(): Promise<Transaction> {
    this.#connected();
    this.#inTransaction = true;
    return this;
  }

  async commit(): Promise<void> {
    this.#inTransaction = false;
  }

  async abort(): Promise<void> {
    this.#inTransaction = false;
  }

  isActive(): boolean {
    return this.#inTransaction;
  }

  #connected(): void {
    if (this.#state !== 'connected') throw new Error('producer not connected');
  }

  #record(kind: 'send' | 'sendBatch', records: readonly ProducerRecord[]): RecordMetadata[] {
    this.#connected();
    for (const key of ['acks', 'timeout', 'compression']) {
      if (records.some((record) => Object.hasOwn(record, key))) throw new Error(`The '${key}' property seems to be a KafkaJS property in the main config block.`);
    }
    const messages = records.flatMap((record) => record.messages);
    this.sent.push({ kind, transactional: this.#inTransaction, messages: messages.map((m) => ({ ...m, ...(m.headers ? { headers: structuredClone(m.headers) } : {}) })) });
    for (const message of messages) {
      const rewritten = message as Omit<Message, 'timestamp' | 'headers'> & { partition: number; timestamp: unknown; headers: unknown };
      rewritten.partition = -1;
      if (typeof message.value === 'string') rewritten.value = Buffer.from(message.value);
      rewritten.timestamp = message.timestamp ? Number(message.timestamp) : 0;
      rewritten.headers = toRdKafkaHeaders(message.headers);
    }
    return messages.map(() => ({ topicName: 't', partition: 0, errorCode: 0 }));
  }
}

/** Confluent's `convertToRdKafkaHeaders`, with the check its native `produce` makes of each value. */
function toRdKafkaHeaders(headers: IHeaders | undefined): { [name: string]: Buffer | string }[] | null {
  if (!headers) return null;
  const list: { [name: string]: unknown }[] = [];
  for (const [name, value] of Object.entries(headers)) {
    for (const item of Array.isArray(value) ? value : [value]) list.push({ [name]: item });
  }
  for (const header of list) {
    for (const value of Object.values(header)) if (typeof value !== 'string' && !Buffer.isBuffer(value)) throw new Error('Header value must be a string or buffer');
  }
  return list as { [name: string]: Buffer | string }[];
}
