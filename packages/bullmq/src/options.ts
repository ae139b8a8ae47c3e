import { DedupProcessor, InvalidOptionsError, parseOptions, processorOptionsSchema, type DedupProcessorOptions, type DedupStore } from '@onceonly/core';
import type { Job } from 'bullmq';
import { z } from 'zod';
import { DEFAULT_STAMP_KEY } from './stamp.js';

/** Where a job's message ID comes from. */
export type IdSource<D = unknown> = 'stamp' | 'jobId' | ((job: Job<D>) => unknown);

/**
 * Options of the BullMQ adapter, on top of `DedupProcessor`'s (whose `scope` defaults to the queue
 * name). `S` is the store's type, from `store` or `processor`: it decides whether handlers get a `tx`.
 */
export interface AdapterOptions<D = unknown, S extends DedupStore = DedupStore> {
  /**
   * The job's message ID: its stamp (`'stamp'`, the default; see `addStamped`), BullMQ's job id
   * (`'jobId'`; only meaningful for custom job ids, since BullMQ's generated ids differ per add), or a
   * function of the job (a business key).
   */
  id?: IdSource<D>;
  /** The `job.data` property holding the stamp. @defaultValue 'onceonlyId' */
  stampKey?: string;
  /** A processor to share (e.g. between workers of one process); the dedup options must then be omitted. */
  processor?: DedupProcessor<S>;
  /**
   * Send the claims (and completions) of concurrent jobs made while an earlier one is in flight as
   * one `claimMany` (`completeMany`) round trip. Each job still waits for its own answer, so nothing is
   * acked before its completion is recorded. Ignored with `processor`. @defaultValue true
   */
  coalesce?: boolean;
  /**
   * On close (`worker.close()` of {@link createWorker}, or the wrapper's `close()`), how long running
   * handlers may take to finish before their `signal` is aborted. A handler that then settles releases
   * its claim; one that does not is abandoned (its lease runs out and the next run is a takeover). Either
   * way its job goes back to the queue without using an attempt, and the close resolves instead of
   * waiting for a handler that never returns. `worker.close(true)` (force) aborts at once.
   * Ignored with `processor` (close that processor yourself). @defaultValue 10000
   */
  closeGraceMs?: number;
}

/** Options of `onceonly` (and `createWorker`'s `onceonly`): the adapter's and the processor's; `S` is the store's type. */
export type OnceOnlyWorkerOptions<D = unknown, S extends DedupStore = DedupStore> = AdapterOptions<D, S> & Partial<DedupProcessorOptions<S>>;

/** Default of `closeGraceMs`. */
export const DEFAULT_CLOSE_GRACE_MS = 10_000;
/** A scope to check the other processor options with when the scope comes from each job's queue. */
const SCOPE_FOR_CHECK = 'queue';

const adapterSchema = z
  .object({
    id: z.union([z.enum(['stamp', 'jobId']), z.custom<(job: Job) => unknown>((v) => typeof v === 'function', 'must be "stamp", "jobId" or a function of the job')]).default('stamp'),
    stampKey: z.string().min(1, 'must be a non-empty string').default(DEFAULT_STAMP_KEY),
    processor: z.instanceof(DedupProcessor, { message: 'must be a DedupProcessor' }).optional(),
    coalesce: z.boolean().default(true),
    closeGraceMs: z.number().int().min(0).max(2_147_483_647).default(DEFAULT_CLOSE_GRACE_MS),
  });

export interface ResolvedAdapterOptions {
  id: IdSource<unknown>;
  stampKey: string;
  processor: DedupProcessor | undefined;
  coalesce: boolean;
  closeGraceMs: number;
  dedup: Partial<DedupProcessorOptions>;
}

/**
 * Splits adapter options from the processor's and validates both at once, whether or not a scope is
 * given (without one, the scope is each job's queue name and the processor is built at its first job).
 * @throws {InvalidOptionsError} naming each wrong or unknown option.
 */
export function resolveAdapterOptions(input: OnceOnlyWorkerOptions<never> | undefined): ResolvedAdapterOptions {
  if (input !== undefined && input !== null && (typeof input !== 'object' || Array.isArray(input))) {
    throw new InvalidOptionsError(`invalid onceonly BullMQ options: must be an object, got ${Array.isArray(input) ? 'an array' : typeof input}`);
  }
  const { id, stampKey, processor, coalesce, closeGraceMs, ...dedup } = (input ?? {}) as OnceOnlyWorkerOptions;
  const adapter = parseOptions(adapterSchema, { id, stampKey, processor, coalesce, closeGraceMs }, 'onceonly BullMQ');
  if (adapter.processor) {
    if (Object.keys(dedup).length > 0) {
      parseOptions(z.object({}).strict(), dedup, 'onceonly BullMQ (with "processor", configure the processor itself)');
    }
  } else {
    // The processor's own checks, now rather than at the first job (which would fail every job).
    parseOptions(processorOptionsSchema, { ...dedup, scope: dedup.scope === undefined ? SCOPE_FOR_CHECK : dedup.scope }, 'onceonly BullMQ');
  }
  return {
    id: adapter.id as IdSource<unknown>,
    stampKey: adapter.stampKey,
    processor: adapter.processor,
    coalesce: adapter.coalesce,
    closeGraceMs: adapter.closeGraceMs,
    dedup,
  };
}
