import { createNoopMeter, metrics, ProxyTracerProvider, trace, type Meter, type MeterProvider, type Tracer, type TracerProvider } from '@opentelemetry/api';
import { INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION } from './names.js';

/** The API's own no-op tracer provider: what the global proxy delegates to while no SDK is registered. */
const NOOP_TRACER_PROVIDER = new ProxyTracerProvider().getDelegate();
/** The API's no-op meter (a singleton): what every meter of the no-op meter provider is. */
const NOOP_METER = createNoopMeter();

/**
 * The tracer to use for a message, resolved per message so that an SDK registered later is picked up
 * (as the API's own proxy does), or `undefined` while no tracer provider is registered: then no span
 * is made at all, not even a non-recording one.
 */
export class TracerSource {
  readonly #given: TracerProvider | undefined;
  #provider: TracerProvider | undefined;
  #tracer: Tracer | undefined;

  constructor(given: TracerProvider | undefined) {
    this.#given = given;
  }

  get(): Tracer | undefined {
    let provider = this.#given ?? trace.getTracerProvider();
    if (provider instanceof ProxyTracerProvider) {
      provider = provider.getDelegate();
      if (provider === NOOP_TRACER_PROVIDER) return undefined;
    }
    if (provider !== this.#provider) {
      this.#provider = provider;
      this.#tracer = provider.getTracer(INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION);
    }
    return this.#tracer;
  }
}

/**
 * The meter of `given` (or of the global meter provider as it is now), or `undefined` when it is the
 * no-op one. Meters are resolved once, when an instrument set is built, as OpenTelemetry meters are:
 * register the SDK (or pass a provider) first.
 */
export function meterOf(given: MeterProvider | undefined): Meter | undefined {
  const meter = (given ?? metrics.getMeterProvider()).getMeter(INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION);
  return meter === NOOP_METER ? undefined : meter;
}
