import { context, propagation, type TextMapGetter, type TextMapSetter } from '@opentelemetry/api';

/** A message's trace context carrier as an adapter hands it over: Kafka headers (bytes), parsed JSON. */
export type Carrier = Readonly<Record<string, unknown>>;

function text(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (ArrayBuffer.isView(value)) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8');
  return undefined;
}

/** Reads a carrier whose values may be strings, bytes (Kafka headers) or lists of either. */
export const carrierGetter: TextMapGetter<Carrier> = {
  keys: (carrier) => Object.keys(carrier),
  get(carrier, key) {
    const value = carrier[key];
    if (value === undefined || value === null) return undefined;
    if (Array.isArray(value)) {
      const values = value.map(text).filter((v): v is string => v !== undefined);
      return values.length === 0 ? undefined : values;
    }
    return text(value);
  },
};

const setter: TextMapSetter<Record<string, unknown>> = {
  set(carrier, key, value) {
    carrier[key] = value;
  },
};

/**
 * Writes the active trace context into `carrier` with the registered propagator (W3C `traceparent`
 * and `tracestate`, plus `baggage` with the SDK's defaults), unless the carrier already holds a
 * `traceparent`: a creation context given by the producer's code (or stamped by an earlier attempt
 * of the same send) is kept as it is. Without a registered propagator it writes nothing.
 *
 * Hand it to the producer helpers, which call it once per message as they stamp it:
 * `withMessageIds(producer, { inject: injectTraceContext })` (Kafka headers) and
 * `addStamped(queue, name, data, opts, { inject: injectTraceContext })` (BullMQ, into
 * `opts.telemetry.metadata`, where BullMQ's own telemetry keeps it too).
 */
export function injectTraceContext(carrier: Record<string, unknown>): void {
  if (carrier['traceparent'] !== undefined && carrier['traceparent'] !== null) return;
  propagation.inject(context.active(), carrier, setter);
}
