import { DedupProcessor, parseOptions, type DedupProcessorOptions } from '@onceonly/core';
import type { Job } from 'bullmq';
import { z } from 'zod';
import { DEFAULT_STAMP_KEY } from './stamp.js';

/** Where a job's message ID comes from. */
export type IdSource<D = unknown> = 'stamp' | 'jobId' | ((job: Job<D>) => unknown);

/** Options of the BullMQ adapter, on top of `DedupProcessor`'s (whose `scope` defaults to the queue name). */
export interface AdapterOptions<D = unknown> {
  /**
   * The job's message ID: its stamp (`'stamp'`, the default; see `addStamped`), BullMQ's job id
   * (`'jobId'`; only meaningful for custom job ids, since BullMQ's generated ids differ per add), or a
   * function of the job (a business key).
   */
  id?: IdSource<D>;
  /** The `job.data` property holding the stamp. @defaultValue 'onceonlyId' */
  stampKey?: string;
  /** A processor to share (e.g. between workers of one process); the dedup options must then be omitted. */
  processor?: DedupProcessor;
  /**
   * Send the claims (and completions) of concurrent jobs made while an earlier one is in flight as
   * one `claimMany` (`completeMany`) round trip. Each job still waits for its own answer, so nothing is
   * acked before its completion is recorded. Ignored with `processor`. @defaultValue true
   */
  coalesce?: boolean;
}

export type OnceOnlyWorkerOptions<D = unknown> = AdapterOptions<D> & Partial<DedupProcessorOptions>;

const adapterSchema = z
  .object({
    id: z.union([z.enum(['stamp', 'jobId']), z.custom<(job: Job) => unknown>((v) => typeof v === 'function', 'must be "stamp", "jobId" or a function of the job')]).default('stamp'),
    stampKey: z.string().min(1, 'must be a non-empty string').default(DEFAULT_STAMP_KEY),
    processor: z.instanceof(DedupProcessor, { message: 'must be a DedupProcessor' }).optional(),
    coalesce: z.boolean().default(true),
  });

export interface ResolvedAdapterOptions {
  id: IdSource<unknown>;
  stampKey: string;
  processor: DedupProcessor | undefined;
  coalesce: boolean;
  dedup: Partial<DedupProcessorOptions>;
}

/** Splits adapter options from the processor's and validates the adapter's (the processor validates its own). */
export function resolveAdapterOptions(input: OnceOnlyWorkerOptions<never> | undefined): ResolvedAdapterOptions {
  const { id, stampKey, processor, coalesce, ...dedup } = (input ?? {}) as OnceOnlyWorkerOptions<unknown>;
  const adapter = parseOptions(adapterSchema, { id, stampKey, processor, coalesce }, 'onceonly BullMQ');
  if (adapter.processor && Object.keys(dedup).length > 0) {
    parseOptions(z.object({}).strict(), dedup, 'onceonly BullMQ (with "processor", configure the processor itself)');
  }
  return { id: adapter.id as IdSource<unknown>, stampKey: adapter.stampKey, processor: adapter.processor, coalesce: adapter.coalesce, dedup };
}
