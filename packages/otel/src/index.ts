/**
 * `@onceonly/otel`: OpenTelemetry for onceonly. A `process` span per message (the messaging
 * semantic conventions) with its outcome; metrics of outcomes, durations, store calls, takeovers,
 * lease losses, fail-open runs, store errors and the duplicate rate; the producer's trace context
 * carried through Kafka headers and BullMQ job options. Only `@opentelemetry/api` is needed (a peer):
 * register an SDK to record anything; without one, nothing is done.
 *
 * @example
 * import { instrumentProcessor, instrumentStore, otelInstrumentation } from '@onceonly/otel';
 *
 * const processor = new DedupProcessor({ scope: 'emails', store: instrumentStore(store), instrumentation: otelInstrumentation() });
 * instrumentProcessor(processor);
 *
 * @packageDocumentation
 */
export { otelInstrumentation, OtelInstrumentation, type OtelInstrumentationOptions } from './instrumentation.js';
export { instrumentProcessor, type InstrumentableProcessor, type InstrumentProcessorOptions } from './processor.js';
export { instrumentStore, TIMED_STORE_OPERATIONS, type InstrumentStoreOptions } from './store.js';
export { instrumentMonitor, type InstrumentMonitorOptions } from './monitor.js';
export { carrierGetter, injectTraceContext, type Carrier } from './propagation.js';
export { ATTR, DURATION_BUCKETS, errorType, INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION, METRIC, SPAN_EVENT, STORE_DURATION_BUCKETS } from './names.js';
