import { ValueType, type Attributes, type Counter, type MeterProvider } from '@opentelemetry/api';
import type { DedupProcessor, Instrumentation, ProcessorEvents } from '@onceonly/core';
import { OtelInstrumentation } from './instrumentation.js';
import { ATTR, errorType, METRIC, SPAN_EVENT } from './names.js';
import { meterOf } from './providers.js';

/** Options of {@link instrumentProcessor}. */
export interface InstrumentProcessorOptions {
  /** @defaultValue the global meter provider, as it is now */
  readonly meterProvider?: MeterProvider;
}

/** What {@link instrumentProcessor} needs of a processor. */
export interface InstrumentableProcessor {
  on: DedupProcessor['on'];
  readonly options: { readonly instrumentation?: Instrumentation | undefined };
}

/**
 * Counts a processor's events as metrics: `onceonly.outcomes` (every outcome, by `onceonly.scope`,
 * `onceonly.outcome` and `onceonly.replayed`), `onceonly.takeovers`, `onceonly.leases.lost`,
 * `onceonly.fail_open.runs`, `onceonly.store.errors`, `onceonly.poisoned.messages`,
 * `onceonly.store.resets`, `onceonly.result.errors`, `onceonly.shadow.runs`. When the processor's
 * `instrumentation` is an {@link otelInstrumentation}, the events also land on the message's span
 * (`onceonly.takeover` and the others, see `SPAN_EVENT`), and a takeover sets `onceonly.takeover`.
 *
 * Returns a function that unsubscribes. With no meter provider and no span to annotate it subscribes
 * to nothing.
 *
 * @example
 * const stop = instrumentProcessor(dedup.processor); // a KafkaDedup's processor, say
 */
export function instrumentProcessor(processor: InstrumentableProcessor, options: InstrumentProcessorOptions = {}): () => void {
  const meter = meterOf(options.meterProvider);
  const instrumentation = processor.options.instrumentation instanceof OtelInstrumentation ? processor.options.instrumentation : undefined;
  instrumentation?.trackSpans();
  if (meter === undefined && instrumentation === undefined) return () => undefined;

  const counter = (name: string, description: string, unit: string): Counter | undefined =>
    meter?.createCounter(name, { description, unit, valueType: ValueType.INT });
  const outcomes = counter(METRIC.outcomes, 'Outcomes of message deliveries', '{message}');
  const takeovers = counter(METRIC.takeovers, 'Claims that took over an expired lease', '{takeover}');
  const leasesLost = counter(METRIC.leasesLost, 'Leases lost while the handler ran', '{lease}');
  const failOpen = counter(METRIC.failOpen, 'Handlers run unprotected while the store was unreachable (fail-open)', '{run}');
  const storeErrors = counter(METRIC.storeErrors, 'Store operations that failed', '{error}');
  const poisoned = counter(METRIC.poisoned, 'Messages that can never succeed', '{message}');
  const storeResets = counter(METRIC.storeResets, 'Times the store forgot the scope', '{reset}');
  const resultErrors = counter(METRIC.resultErrors, 'Results that could not be recorded or read back', '{error}');
  const shadowed = counter(METRIC.shadowed, 'Shadow-mode runs that would have been suppressed', '{run}');

  const annotate = (scope: string, id: string, event: string, attributes: Attributes, takeover = false) =>
    instrumentation?.annotate(scope, id, event, attributes, takeover);

  // The outcome counter's attribute sets, built once per scope, status and replayed.
  const outcomeAttributes = new Map<string, Attributes>();
  const listeners: { [K in keyof ProcessorEvents]?: ProcessorEvents[K] } = {
    outcome: ({ scope, status, replayed }) => {
      const key = `${scope}\n${status}\n${replayed}`;
      let attributes = outcomeAttributes.get(key);
      if (attributes === undefined) outcomeAttributes.set(key, (attributes = { [ATTR.scope]: scope, [ATTR.outcome]: status, [ATTR.replayed]: replayed }));
      outcomes!.add(1, attributes);
    },
    takeover: ({ scope, id, token, policy }) => {
      takeovers?.add(1, { [ATTR.scope]: scope, [ATTR.takeoverPolicy]: policy });
      annotate(scope, id, SPAN_EVENT.takeover, { [ATTR.takeoverPolicy]: policy, [ATTR.token]: token }, true);
    },
    'lease-lost': ({ scope, id, token }) => {
      leasesLost?.add(1, { [ATTR.scope]: scope });
      annotate(scope, id, SPAN_EVENT.leaseLost, { [ATTR.token]: token });
    },
    'fail-open': ({ scope, id, error }) => {
      failOpen?.add(1, { [ATTR.scope]: scope });
      annotate(scope, id, SPAN_EVENT.failOpen, { [ATTR.errorType]: errorType(error) });
    },
    'store-error': ({ scope, id, operation, error }) => {
      const type = errorType(error);
      storeErrors?.add(1, { [ATTR.scope]: scope, [ATTR.storeOperation]: operation, [ATTR.errorType]: type });
      annotate(scope, id, SPAN_EVENT.storeError, { [ATTR.storeOperation]: operation, [ATTR.errorType]: type });
    },
    poisoned: ({ scope, error, deadLettered }) => {
      poisoned?.add(1, { [ATTR.scope]: scope, [ATTR.errorType]: errorType(error), [ATTR.deadLettered]: deadLettered });
    },
    'store-reset': ({ scope, reason }) => {
      storeResets?.add(1, { [ATTR.scope]: scope, [ATTR.resetReason]: reason });
    },
    'result-error': ({ scope, id, operation, error }) => {
      resultErrors?.add(1, { [ATTR.scope]: scope, [ATTR.resultOperation]: operation });
      annotate(scope, id, SPAN_EVENT.resultError, { [ATTR.resultOperation]: operation, [ATTR.errorType]: errorType(error) });
    },
    shadow: ({ scope, wouldBe }) => {
      shadowed?.add(1, { [ATTR.scope]: scope, [ATTR.shadowWouldBe]: wouldBe });
    },
  };
  if (outcomes === undefined) delete listeners.outcome;
  const offs = (Object.keys(listeners) as (keyof ProcessorEvents)[]).map((event) => processor.on(event, listeners[event] as never));
  return () => {
    for (const off of offs) off();
  };
}
