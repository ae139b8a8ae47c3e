import {
  DedupProcessor,
  InvalidIdError,
  MemoryStore,
  type DedupStore,
  OnceOnlyError,
  type HandlerContext,
  type Outcome,
} from '@onceonly/core';
import { DelayedError, type Job } from 'bullmq';
import { coalesceStore } from './coalescing-store.js';
import { isUnrecoverable, UnrecoverableJobError } from './errors.js';
import { resolveAdapterOptions, type IdSource, type OnceOnlyWorkerOptions } from './options.js';
import { readStamp } from './stamp.js';

/** What a wrapped handler receives beside the job. */
export interface JobContext<D = unknown> extends Omit<HandlerContext<D>, 'payload'> {
  /** The job being processed (also the handler's first argument). */
  readonly job: Job<D>;
  /** BullMQ's lock token for this run (not the fencing token): pass it to `job.moveToDelayed` and friends. */
  readonly lockToken: string | undefined;
}

/** A job handler made effectively-once by {@link onceonly}. */
export type JobHandler<D = unknown, R = unknown> = (job: Job<D>, context: JobContext<D>) => R | Promise<R>;

/** A BullMQ processor function, as `new Worker(queue, processor)` takes it. */
export type WrappedProcessor<D = unknown, R = unknown> = ((job: Job<D>, token?: string, signal?: AbortSignal) => Promise<R>) & {
  /** The processor(s) deduplicating for this wrapper, one per scope. */
  readonly processors: () => DedupProcessor[];
  /** Stops keeping leases and closes the stores the wrapper created. */
  readonly close: () => Promise<void>;
};

/**
 * Wraps a BullMQ job handler so each message ID is handled once per scope within the window:
 *
 * | outcome | the job |
 * |---|---|
 * | processed | completes with the handler's result |
 * | duplicate | completes without running the handler; its return value is the recorded result (`recordResults`) |
 * | in-progress | moves to delayed and comes back after `retryAfterMs`, without using an attempt |
 * | handler threw | claim released; BullMQ's `attempts`/`backoff` apply. `UnrecoverableError` is terminal (remembered with `rememberFailures`) |
 * | store unavailable | throws the retriable `StoreUnavailableError`: BullMQ retries it, nothing is marked |
 * | bad ID, conflict, remembered failure, dead-letter | fails at once with an `UnrecoverableJobError` (`code` in `failedReason`) |
 * | lease lost | throws the retriable `LeaseLostError`; the retry finds the new owner's record |
 *
 * The scope defaults to the job's queue name. Works with any `concurrency`: claims and completions of
 * concurrent jobs share store round trips (see `coalesce`).
 *
 * @example
 * const worker = new Worker('emails', onceonly(async (job, { id, token }) => send(job.data), { store }), { connection });
 */
export function onceonly<D = unknown, R = unknown>(handler: JobHandler<D, R>, options?: OnceOnlyWorkerOptions<D>): WrappedProcessor<D, R> {
  if (typeof handler !== 'function') throw new TypeError('onceonly(handler): handler must be a function');
  const resolved = resolveAdapterOptions(options as OnceOnlyWorkerOptions<never>);
  const byScope = new Map<string, DedupProcessor>();
  const created: DedupProcessor[] = [];
  const owned: DedupStore[] = []; // stores the wrapper made, closed with it
  const processorFor = (queueName: string): DedupProcessor => {
    if (resolved.processor) return resolved.processor;
    const scope = resolved.dedup.scope ?? queueName;
    let processor = byScope.get(scope);
    if (!processor) {
      const { store: given, ...dedup } = resolved.dedup;
      const store = given ?? new MemoryStore();
      processor = new DedupProcessor({
        ...dedup,
        scope,
        store: resolved.coalesce ? coalesceStore(store) : store,
        isTerminal: terminalWith(resolved.dedup.isTerminal),
      });
      if (!given) owned.push(store);
      byScope.set(scope, processor);
      created.push(processor);
    }
    return processor;
  };
  // Validate the processor options now, not at the first job.
  if (!resolved.processor && resolved.dedup.scope !== undefined) processorFor(resolved.dedup.scope);

  const idOf = idReader(resolved.id as IdSource<D>, resolved.stampKey);

  const wrapped = async (job: Job<D>, lockToken?: string): Promise<R> => {
    const processor = processorFor(job.queueName);
    let id: unknown;
    try {
      id = idOf(job);
    } catch (error) {
      throw error instanceof OnceOnlyError ? new UnrecoverableJobError(error) : error;
    }
    const outcome = await processor.process<D, R>({ id, payload: job.data }, (context) =>
      handler(job, { ...withoutPayload(context), job, lockToken }),
    );
    return settle(outcome, job, lockToken);
  };
  return Object.assign(wrapped, {
    processors: () => (resolved.processor ? [resolved.processor] : [...created]),
    close: async () => {
      await Promise.all(created.map((p) => p.close()));
      await Promise.all(owned.map((s) => s.close()));
    },
  });
}

function withoutPayload<D>(context: HandlerContext<D>): Omit<HandlerContext<D>, 'payload'> {
  const { payload: _payload, ...rest } = context;
  return rest;
}

/** BullMQ's `UnrecoverableError` is terminal, whatever else the user's `isTerminal` says. */
function terminalWith(isTerminal: ((error: Error) => boolean) | undefined): (error: Error) => boolean {
  return (error) => isUnrecoverable(error) || (isTerminal?.(error) ?? false);
}

function idReader<D>(source: IdSource<D>, stampKey: string): (job: Job<D>) => unknown {
  if (source === 'jobId') return (job) => job.id;
  if (typeof source === 'function') return source;
  return (job) => {
    const id = readStamp(job.data, stampKey);
    if (id === undefined) {
      throw new InvalidIdError(
        'ID_MISSING',
        `job ${job.id ?? '?'} (${job.name}) carries no "${stampKey}" stamp in its data: add it with addStamped()/stamp(), or choose another id source`,
      );
    }
    return id;
  };
}

async function settle<D, R>(outcome: Outcome<R>, job: Job<D>, lockToken: string | undefined): Promise<R> {
  switch (outcome.status) {
    case 'processed':
      return outcome.result;
    case 'duplicate':
      return outcome.result as R;
    case 'in-progress':
      // Another worker holds a live lease: come back later. moveToDelayed does not use an attempt.
      await job.moveToDelayed(Date.now() + outcome.retryAfterMs, lockToken);
      throw new DelayedError(`${outcome.error.code}: ${outcome.error.message}`);
    case 'failed':
      if (!outcome.terminal) throw outcome.error;
      if (isUnrecoverable(outcome.error)) throw outcome.error;
      throw outcome.error instanceof OnceOnlyError ? new UnrecoverableJobError(outcome.error) : outcome.error;
    case 'conflict':
      throw new UnrecoverableJobError(outcome.error);
    case 'lease-lost':
    case 'store-unavailable':
      throw outcome.error;
  }
}
