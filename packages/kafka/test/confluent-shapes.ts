// The parts of @confluentinc/kafka-javascript's KafkaJS-compatible API (types/kafkajs.d.ts) that
// onceonly meets, copied as they are declared there: the package itself needs a native build, so the
// tests check against its shapes instead. What matters: its producer is a class with private `#fields`,
// has no `isIdempotent`/`events`/`on`, returns itself from `transaction()`, and its `EachBatchPayload`
// has no `uncommittedOffsets` (its batch no `offsetLag`).

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
 * `this` but the instance throws `Cannot read private member #state`. It records what it sends, and
 * rewrites header values in place the way a client that normalises headers to bytes might.
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
    return this.#record('send', record.messages);
  }

  async sendBatch(batch: ProducerBatch): Promise<RecordMetadata[]> {
    return this.#record('sendBatch', (batch.topicMessages ?? []).flatMap((t) => t.messages));
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

  #record(kind: 'send' | 'sendBatch', messages: Message[]): RecordMetadata[] {
    this.#connected();
    for (const message of messages) {
      for (const [name, value] of Object.entries(message.headers ?? {})) {
        if (typeof value === 'string' && message.headers) message.headers[name] = Buffer.from(value);
      }
    }
    this.sent.push({ kind, transactional: this.#inTransaction, messages });
    return messages.map(() => ({ topicName: 't', partition: 0, errorCode: 0 }));
  }
}
