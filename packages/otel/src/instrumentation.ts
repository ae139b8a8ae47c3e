import {
  context,
  diag,
  isSpanContextValid,
  propagation,
  SpanKind,
  SpanStatusCode,
  trace,
  ValueType,
  type Attributes,
  type Context,
  type Histogram,
  type Link,
  type MeterProvider,
  type Span,
  type TextMapPropagator,
  type TracerProvider,
} from '@opentelemetry/api';
import type { Instrumentation, MessageInfo, MessageTrace, Outcome } from '@onceonly/core';
import { ATTR, DURATION_BUCKETS, errorType, METRIC } from './names.js';
import { carrierGetter, type Carrier } from './propagation.js';
import { meterOf, TracerSource } from './providers.js';

/** Options of {@link otelInstrumentation}. */
export interface OtelInstrumentationOptions {
  /** @defaultValue the global tracer provider (resolved per message: an SDK registered later is used) */
  readonly tracerProvider?: TracerProvider;
  /** @defaultValue the global meter provider, as it is when `otelInstrumentation` is called */
  readonly meterProvider?: MeterProvider;
  /** The propagator that reads a message's creation context from its carrier. @defaultValue the global one */
  readonly propagator?: TextMapPropagator;
  /**
   * `messaging.system` where the adapter does not say (e.g. a processor you call yourself). The
   * adapters set it: `kafka`, `bullmq`. @defaultValue none
   */
  readonly system?: string;
  /**
   * How the process span relates to the message's creation context (the producer's trace context,
   * from `traceparent`): `'link'` (the messaging conventions' default) makes the span a child of the
   * context active when processing starts and links it to the creation context; `'parent'` makes the
   * creation context its parent (one trace from producer to consumer), with a link to it and to the
   * active context, if any. @defaultValue 'link'
   */
  readonly creationContext?: 'link' | 'parent';
  /**
   * Record a failed handler's exception (its message and stack) as a span event. Off by default:
   * error messages may carry data from the message; `error.type` (the class name or onceonly `code`)
   * is always recorded. @defaultValue false
   */
  readonly recordExceptions?: boolean;
  /** The span's name. @defaultValue `process <messaging.destination.name>`, or `process` without a destination */
  readonly spanName?: (message: MessageInfo) => string;
}

/** Outcomes after which the span's status is an error. */
const ERROR_STATUSES = new Set<Outcome['status']>(['failed', 'conflict', 'lease-lost', 'store-unavailable', 'dead-lettered']);

/** Per scope: messages in flight, and the scope's attribute set (built once). */
class ScopeState {
  inFlight = 0;
  readonly attributes: Attributes;

  constructor(readonly scope: string) {
    this.attributes = { [ATTR.scope]: scope };
  }
}

/** The instruments, when a meter provider is registered. */
interface Instruments {
  readonly processDuration: Histogram;
  readonly handlerDuration: Histogram;
}

/**
 * The `Instrumentation` of {@link otelInstrumentation}. Pass it as the processor's (or adapter's)
 * `instrumentation` option.
 */
export class OtelInstrumentation implements Instrumentation {
  readonly #tracers: TracerSource;
  readonly #instruments: Instruments | undefined;
  readonly #propagator: TextMapPropagator | undefined;
  readonly #system: string | undefined;
  readonly #asParent: boolean;
  readonly #recordExceptions: boolean;
  readonly #spanName: ((message: MessageInfo) => string) | undefined;
  readonly #scopes = new Map<string, ScopeState>();
  /** Live spans by scope and ID, kept only once `instrumentProcessor` asks for them (to add events). */
  #live: Map<string, MessageSpan> | undefined;

  constructor(options: OtelInstrumentationOptions = {}) {
    this.#tracers = new TracerSource(options.tracerProvider);
    this.#propagator = options.propagator;
    this.#system = options.system;
    this.#asParent = options.creationContext === 'parent';
    this.#recordExceptions = options.recordExceptions === true;
    this.#spanName = options.spanName;
    const meter = meterOf(options.meterProvider);
    if (meter !== undefined) {
      this.#instruments = {
        processDuration: meter.createHistogram(METRIC.processDuration, {
          description: 'Duration of processing one message, from its claim to its final outcome',
          unit: 's',
          advice: { explicitBucketBoundaries: DURATION_BUCKETS },
        }),
        handlerDuration: meter.createHistogram(METRIC.handlerDuration, {
          description: 'Duration of one run of the handler',
          unit: 's',
          advice: { explicitBucketBoundaries: DURATION_BUCKETS },
        }),
      };
      meter
        .createObservableUpDownCounter(METRIC.inFlight, { description: 'Messages being processed', unit: '{message}', valueType: ValueType.INT })
        .addCallback((result) => {
          for (const state of this.#scopes.values()) result.observe(state.inFlight, state.attributes);
        });
    }
  }

  /** @internal Called by the processor for every message. Telemetry that fails never fails the message. */
  start(message: MessageInfo): MessageTrace | undefined {
    try {
      return this.#start(message);
    } catch (error) {
      warnOnce(error);
      return undefined;
    }
  }

  #start(message: MessageInfo): MessageTrace | undefined {
    const tracer = this.#tracers.get();
    const instruments = this.#instruments;
    // Nothing registered: no span, no timing, the handler runs as without an instrumentation.
    if (tracer === undefined && instruments === undefined) return undefined;

    let state = this.#scopes.get(message.scope);
    if (state === undefined) this.#scopes.set(message.scope, (state = new ScopeState(message.scope)));
    if (tracer === undefined) {
      state.inFlight++;
      return new MessageSpan(this, message, state, instruments, undefined, undefined);
    }

    const active = context.active();
    let parent = active;
    let handlerContext = active;
    let links: Link[] | undefined;
    if (message.carrier !== undefined) {
      const extracted = (this.#propagator ?? propagation).extract(active, message.carrier as Carrier, carrierGetter);
      const creation = trace.getSpanContext(extracted);
      if (creation !== undefined && isSpanContextValid(creation) && creation !== trace.getSpanContext(active)) {
        links = [{ context: creation }];
        handlerContext = extracted; // keeps the producer's baggage for the handler
        if (this.#asParent) {
          parent = extracted;
          const ambient = trace.getSpanContext(active);
          if (ambient !== undefined && isSpanContextValid(ambient)) links.push({ context: ambient });
        }
      }
    }
    // Object.assign onto a literal: a spread copy that then gets more keys falls to V8's slow
    // dictionary mode (about 3 µs a message, measured).
    const attributes: Attributes = Object.assign(
      { [ATTR.operationName]: 'process', [ATTR.operationType]: 'process', [ATTR.messageId]: message.id, [ATTR.scope]: message.scope },
      message.attributes,
    );
    if (attributes[ATTR.messagingSystem] === undefined && this.#system !== undefined) attributes[ATTR.messagingSystem] = this.#system;
    const destination = attributes[ATTR.destinationName];
    const name = this.#spanName?.(message) ?? (destination === undefined ? 'process' : `process ${String(destination)}`);
    const span = tracer.startSpan(name, { kind: SpanKind.CONSUMER, attributes, ...(links ? { links } : {}) }, parent);
    const traced = new MessageSpan(this, message, state, instruments, span, trace.setSpan(handlerContext, span));
    state.inFlight++;
    const live = this.#live;
    if (live !== undefined && span.isRecording()) live.set(liveKey(message.scope, message.id), traced);
    return traced;
  }

  /** @internal Keeps live spans findable by scope and ID, for `instrumentProcessor`'s span events. */
  trackSpans(): void {
    this.#live ??= new Map();
  }

  /** @internal Adds an event to the span of a message being processed, if it is traced. */
  annotate(scope: string, id: string, event: string, attributes: Attributes, takeover: boolean): void {
    const traced = this.#live?.get(liveKey(scope, id));
    if (traced === undefined) return;
    traced.span?.addEvent(event, attributes);
    if (takeover) traced.takeover = true;
  }

  /** @internal */
  ended(traced: MessageSpan): void {
    const live = this.#live;
    if (live === undefined) return;
    const key = liveKey(traced.message.scope, traced.message.id);
    if (live.get(key) === traced) live.delete(key);
  }

  /** @internal */
  get recordExceptions(): boolean {
    return this.#recordExceptions;
  }
}

let warned = false;
/** A failure of the telemetry itself (an SDK that throws): reported once through OpenTelemetry's diag logger. */
function warnOnce(error: unknown): void {
  if (warned) return;
  warned = true;
  diag.warn(`@onceonly/otel: telemetry failed and was skipped: ${(error as Error)?.message ?? String(error)}`);
}

function liveKey(scope: string, id: string): string {
  return `${scope}\n${id}`;
}

/** One message's span and timings. */
class MessageSpan implements MessageTrace {
  readonly #started = performance.now();
  #runs = 0;
  /** A takeover event was seen for this message (see `instrumentProcessor`). */
  takeover = false;

  constructor(
    readonly owner: OtelInstrumentation,
    readonly message: MessageInfo,
    readonly state: ScopeState,
    readonly instruments: Instruments | undefined,
    readonly span: Span | undefined,
    readonly context: Context | undefined,
  ) {}

  run<T>(handler: () => T): T {
    this.#runs++;
    const histogram = this.instruments?.handlerDuration;
    const ctx = this.context;
    if (histogram === undefined) return ctx === undefined ? handler() : context.with(ctx, handler);
    const started = performance.now();
    const attributes = this.state.attributes;
    const record = (error?: unknown) => {
      try {
        histogram.record((performance.now() - started) / 1000, error === undefined ? attributes : { ...attributes, [ATTR.errorType]: errorType(error) });
      } catch (failure) {
        warnOnce(failure);
      }
    };
    let result: T;
    try {
      result = ctx === undefined ? handler() : context.with(ctx, handler);
    } catch (error) {
      record(error ?? 'thrown');
      throw error;
    }
    if (typeof (result as { then?: unknown } | null)?.then === 'function') {
      (result as PromiseLike<unknown>).then(
        () => record(),
        (error: unknown) => record(error ?? 'rejected'),
      );
    } else {
      record();
    }
    return result;
  }

  end(outcome: Outcome<unknown>): void {
    this.state.inFlight--;
    try {
      this.#end(outcome);
    } catch (error) {
      warnOnce(error);
    }
  }

  #end(outcome: Outcome<unknown>): void {
    const failed = ERROR_STATUSES.has(outcome.status);
    const error = failed ? (outcome as { error?: unknown }).error : undefined;
    const type = failed ? errorType(error) : undefined;
    const span = this.span;
    if (span !== undefined) {
      if (span.isRecording()) {
        span.setAttributes(outcomeAttributes(outcome, this.#runs, this.takeover));
        if (type !== undefined) {
          span.setAttribute(ATTR.errorType, type);
          span.setStatus({ code: SpanStatusCode.ERROR, message: type });
          if (this.owner.recordExceptions && error instanceof Error && outcome.status === 'failed' && !outcome.replayed) span.recordException(error);
        }
      }
      span.end();
      this.owner.ended(this);
    }
    const instruments = this.instruments;
    if (instruments !== undefined) {
      const given = this.message.attributes;
      const attributes: Attributes = { [ATTR.operationName]: 'process', [ATTR.scope]: this.message.scope, [ATTR.outcome]: outcome.status };
      if (given !== undefined) {
        const system = given[ATTR.messagingSystem];
        const destination = given[ATTR.destinationName];
        const group = given[ATTR.consumerGroup];
        if (system !== undefined) attributes[ATTR.messagingSystem] = system;
        if (destination !== undefined) attributes[ATTR.destinationName] = destination;
        if (group !== undefined) attributes[ATTR.consumerGroup] = group;
      }
      if (type !== undefined) attributes[ATTR.errorType] = type;
      instruments.processDuration.record((performance.now() - this.#started) / 1000, attributes);
    }
  }
}

/** What the final outcome adds to the span. */
function outcomeAttributes(outcome: Outcome<unknown>, runs: number, sawTakeover: boolean): Attributes {
  const attributes: Attributes = { [ATTR.outcome]: outcome.status, [ATTR.replayed]: outcome.replayed, [ATTR.handlerRuns]: runs };
  let takeover = sawTakeover;
  switch (outcome.status) {
    case 'processed':
      attributes[ATTR.token] = outcome.token;
      takeover ||= outcome.takeover;
      if (outcome.failOpen) attributes[ATTR.failOpen] = true;
      if (outcome.shadowOf !== undefined) attributes[ATTR.shadowWouldBe] = outcome.shadowOf;
      break;
    case 'duplicate':
      if (outcome.belowMark) attributes[ATTR.belowMark] = true;
      if (outcome.reconciled) {
        attributes[ATTR.reconciled] = true;
        takeover = true;
      }
      break;
    case 'in-progress':
      attributes[ATTR.retryAfterMs] = outcome.retryAfterMs;
      break;
    case 'store-unavailable':
      attributes[ATTR.handlerRan] = outcome.handlerRan;
      break;
    case 'lease-lost':
      attributes[ATTR.token] = outcome.token;
      break;
    case 'failed':
      takeover ||= (outcome.error as { code?: unknown }).code === 'TAKEOVER_DEAD_LETTER';
      break;
    default:
      break;
  }
  attributes[ATTR.takeover] = takeover;
  return attributes;
}

/**
 * An OpenTelemetry `Instrumentation` for a `DedupProcessor` (its `instrumentation` option; the
 * adapters take it among the processor options). For every message:
 *
 * - a `process` span (kind `CONSUMER`, the messaging conventions): `messaging.system`,
 *   `messaging.destination.name`, `messaging.consumer.group.name`, `messaging.message.id` (the
 *   onceonly ID) and what the adapter adds (`messaging.destination.partition.id`,
 *   `messaging.kafka.offset`), then the outcome: `onceonly.outcome`, `onceonly.replayed` (true when
 *   the handler did not run: a duplicate), `onceonly.takeover`, `onceonly.handler.runs`, `error.type`.
 *   The span links to the producer's trace context from the message (`traceparent`, see
 *   {@link OtelInstrumentationOptions.creationContext}); the handler runs inside the span, so its own
 *   spans are children;
 * - metrics: `messaging.process.duration` (by outcome), `onceonly.handler.duration`,
 *   `onceonly.messages.in_flight`. The outcome counter `onceonly.outcomes` comes from the processor's
 *   events: see `instrumentProcessor`, which counts every outcome, also those of batch messages that
 *   stopped before they started (a failed claim round trip).
 *
 * With no tracer provider and no meter provider registered it does nothing at all: `start()` answers
 * `undefined`, and the processor runs the message as without an instrumentation.
 *
 * @example
 * const instrumentation = otelInstrumentation();
 * const processor = new DedupProcessor({ scope: 'emails', instrumentation });
 * instrumentProcessor(processor); // outcomes, takeovers, lease losses, store errors… as counters and span events
 */
export function otelInstrumentation(options: OtelInstrumentationOptions = {}): OtelInstrumentation {
  return new OtelInstrumentation(options);
}
