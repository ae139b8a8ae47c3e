import type { Message } from '@onceonly/core';
import type { BulkJobOptions, Job, JobsOptions } from 'bullmq';

/** Writes the producer's trace context into a carrier (e.g. `injectTraceContext` of `@onceonly/otel`). */
export type TraceInjector = (carrier: Record<string, unknown>) => void;

/**
 * `opts` with the producer's trace context in `telemetry.metadata` (the JSON of the carrier that
 * `inject` filled), where BullMQ's own telemetry keeps it too, so it travels with the job and not in
 * its data (which onceonly fingerprints). Options that already carry metadata keep it.
 */
export function withTraceContext<O extends JobsOptions | BulkJobOptions>(opts: O | undefined, inject: TraceInjector | undefined): O | undefined {
  if (inject === undefined || opts?.telemetry?.metadata !== undefined) return opts;
  const carrier: Record<string, unknown> = {};
  inject(carrier);
  if (Object.keys(carrier).length === 0) return opts;
  return { ...opts, telemetry: { ...opts?.telemetry, metadata: JSON.stringify(carrier) } } as O;
}

/** A job's trace context carrier: its `opts.telemetry.metadata`, parsed (absent or not a JSON object: none). */
export function traceCarrierOf(job: Job): Readonly<Record<string, unknown>> | undefined {
  const metadata = job.opts?.telemetry?.metadata;
  if (typeof metadata !== 'string' || metadata.length === 0) return undefined;
  try {
    const parsed: unknown = JSON.parse(metadata);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The message of a job for a processor with an instrumentation: its trace context and messaging attributes. */
export function tracedMessage<D>(id: unknown, job: Job<D>): Message<D> {
  return {
    id,
    payload: job.data,
    carrier: traceCarrierOf(job),
    attributes: { 'messaging.system': 'bullmq', 'messaging.destination.name': job.queueName },
  };
}
