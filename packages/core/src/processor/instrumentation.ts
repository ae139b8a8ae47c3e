import type { Outcome } from './outcome.js';

/** What an instrumentation is told about a message when its processing starts. */
export interface MessageInfo {
  readonly scope: string;
  /** The validated ID (or, when it is invalid, a printable prefix of it). */
  readonly id: string;
  /** The message's trace context carrier, as the adapter gave it (Kafka headers, a field of BullMQ job data). */
  readonly carrier?: Readonly<Record<string, unknown>>;
  /** What the adapter knows about the message (e.g. `messaging.system`, `messaging.destination.name`). */
  readonly attributes?: Readonly<Record<string, string | number | boolean>>;
}

/** One message's trace, from its start to its final outcome. */
export interface MessageTrace {
  /** Runs the handler in this message's context, so the handler's own spans become its children. */
  run<T>(handler: () => T): T;
  /** The message's final outcome; called once. */
  end(outcome: Outcome<unknown>): void;
}

/**
 * Observes each message a processor handles (e.g. an OpenTelemetry span per message, see
 * `@onceonly/otel`). Without one, the processor does no tracing work at all.
 */
export interface Instrumentation {
  /** A message starts. Answer `undefined` to leave it untraced. */
  start(message: MessageInfo): MessageTrace | undefined;
}
