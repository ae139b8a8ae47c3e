import {
  type BaseHandlerContext,
  DedupProcessor,
  InvalidIdError,
  InvalidOptionsError,
  MemoryStore,
  type DedupStore,
  OnceOnlyError,
  type HandlerContext,
  type Outcome,
  ProcessorClosedError,
  type ProcessOptions,
  type TxOf,
} from '@onceonly/core';
import { DelayedError, type Job } from 'bullmq';
import { isUnrecoverable, UnrecoverableJobError } from './errors.js';
import { resolveAdapterOptions, type IdSource, type OnceOnlyWorkerOptions } from './options.js';
import { readStamp } from './stamp.js';
import { tracedMessage } from './trace-context.js';

/** What a wrapped handler receives beside the job, whatever the store. */
export interface BaseJobContext<D = unknown> extends Omit<BaseHandlerContext<D>, 'payload'> {
  /** The job being processed (also the handler's first argument). */
  readonly job: Job<D>;
  /** BullMQ's lock token for this run (not the fencing token): pass it to `job.moveToDelayed` and friends. */
  readonly lockToken: string | undefined;
}

/**
 * What a wrapped handler receives beside the job. With a transactional store (`Tx` is its transaction
 * type: a `pg` client inside `BEGIN` for `PostgresStore`) it also has `tx`: run the effect's writes on
 * it, and they commit together with the completion, or not at all. With any other store (`Tx` is
 * `never`, the default) there is no `tx`.
 */
export type JobContext<D = unknown, Tx = never> = BaseJobContext<D> & ([Tx] extends [never] ? unknown : { readonly tx: Tx });

/** A job handler made effectively-once by {@link onceonly}; `Tx` as in {@link JobContext}. */
export type JobHandler<D = unknown, R = unknown, Tx = never> = (job: Job<D>, context: JobContext<D, Tx>) => R | Promise<R>;

/** A BullMQ processor function, as `new Worker(queue, processor)` takes it. */
export type WrappedProcessor<D = unknown, R = unknown, S extends DedupStore = DedupStore> = ((job: Job<D>, token?: string, signal?: AbortSignal) => Promise<R>) & {
  /** The processor(s) deduplicating for this wrapper, one per scope. */
  readonly processors: () => DedupProcessor<S>[];
  /**
   * Closes the wrapper: jobs that reach it from now on go back to the queue unrun; running handlers get
   * `graceMs` to finish, then their `signal` is aborted (reason: a `ProcessorClosedError`) and their jobs
   * go back to the queue without using an attempt (a handler that ignores the abort is given up on: its
   * claim expires and the next run is a takeover). Resolves once every running job has settled, then
   * closes the stores the wrapper created. A shared `processor` is not closed: close it yourself.
   *
   * With a plain `Worker`, call it alongside `worker.close()`, which waits for running jobs:
   * `await Promise.all([worker.close(), wrapped.close()])`. (`createWorker` does this for you.)
   *
   * @param options.graceMs how long running handlers may take before they are aborted.
   * @defaultValue the `closeGraceMs` option (10 s)
   * @throws {InvalidOptionsError} when `graceMs` is not a non-negative integer.
   */
  readonly close: (options?: { graceMs?: number }) => Promise<void>;
};

/**
 * Wraps a BullMQ job handler so each message ID is handled once per scope within the window:
 *
 * | outcome | the job |
 * |---|---|
 * | processed | completes with the handler's result |
 * | duplicate | completes without running the handler; its return value is the recorded result (`recordResults`) |
 * | in-progress | moves to delayed and comes back after `retryAfterMs`, without using an attempt |
 * | in-progress in this process (a duplicate of a job this worker is running) | the same: moved to delayed, so it never holds a concurrency slot while it waits |
 * | handler threw | claim released; BullMQ's `attempts`/`backoff` apply. `UnrecoverableError` is terminal (remembered with `rememberFailures`) |
 * | handler ran past `handlerTimeoutMs` | its `signal` aborts with a `HandlerTimeoutError` (`HANDLER_TIMEOUT`, retriable): BullMQ's `attempts`/`backoff` apply. If it settled after the abort its claim was released; if not, the claim expires after `leaseMs` and the retry is a takeover (`onTakeover` decides) |
 * | worker closing (see `close`, `closeGraceMs`) | running handlers are aborted after the grace period; their jobs go back to the queue without using an attempt |
 * | store unavailable | throws the retriable `StoreUnavailableError`: BullMQ retries it, nothing is marked |
 * | bad ID, conflict, remembered failure, dead-letter | fails at once with an `UnrecoverableJobError` (`code` in `failedReason`) |
 * | lease lost | throws the retriable `LeaseLostError`; the retry finds the new owner's record |
 *
 * The scope defaults to the job's queue name. Works with any `concurrency`: claims and completions of
 * concurrent jobs share store round trips (see `coalesce`). A duplicate of a job this process is running
 * is answered `in-progress` at once (the processor's `singleFlight: 'in-progress'`), unless the options
 * set `singleFlight` (e.g. `'wait'`: it then waits for the first in its concurrency slot).
 *
 * Every option is checked here, whether or not `scope` or `processor` is given.
 *
 * **Transactional stores.** With a store that completes inside the handler's transaction
 * (`PostgresStore`), the handler's context has `tx` (typed from the store `S`, given as `store` or
 * through `processor`): writes on it commit together with the completion, so for effects in that
 * database a crash or a stale owner can no longer apply them twice. `tx` is absent from the type
 * with any other store. When you spell out the job data type, spell out the store too
 * (`onceonly<Data, Result, PostgresStore>(…)`), or type the job parameter instead
 * (`async (job: Job<Data>, { tx }) => …`): TypeScript infers either all type arguments or none.
 *
 * @throws {InvalidOptionsError} naming each wrong or unknown option.
 *
 * @example
 * const worker = new Worker('emails', onceonly(async (job, { id, token }) => send(job.data), { store }), { connection });
 * @example
 * // PostgresStore: the ledger row and the completion commit together.
 * const ledger = onceonly(async (job: Job<{ account: string; cents: number }>, { tx, id }) => {
 *   await tx.query('INSERT INTO ledger (message_id, account, cents) VALUES ($1, $2, $3)', [id, job.data.account, job.data.cents]);
 * }, { store: new PostgresStore({ pool }) });
 */
export function onceonly<D = unknown, R = unknown, S extends DedupStore = DedupStore>(
  handler: JobHandler<D, R, TxOf<S>>,
  options?: OnceOnlyWorkerOptions<D, S>,
): WrappedProcessor<D, R, S> {
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
        store,
        coalesce: resolved.coalesce,
        isTerminal: terminalWith(resolved.dedup.isTerminal),
      });
      if (!given) owned.push(store);
      byScope.set(scope, processor);
      created.push(processor);
    }
    return processor;
  };
  // With a known scope the processor is built now (the options were all checked above either way).
  if (!resolved.processor && resolved.dedup.scope !== undefined) processorFor(resolved.dedup.scope);

  const idOf = idReader(resolved.id as IdSource<D>, resolved.stampKey);
  // A duplicate of a running job is parked as a delayed job rather than waiting in a concurrency slot,
  // unless the user chose the processor's singleFlight behaviour.
  const processOptions: ProcessOptions = !resolved.processor && resolved.dedup.singleFlight !== undefined ? {} : { singleFlight: 'in-progress' };
  const running = new Set<Promise<unknown>>(); // jobs in this wrapper now, settled or not
  let closing: Promise<void> | undefined;

  const runJob = async (job: Job<D>, lockToken: string | undefined): Promise<R> => {
    if (closing) return requeue(job, lockToken, new ProcessorClosedError('the onceonly wrapper is closing: the job goes back to the queue unrun'));
    const processor = processorFor(job.queueName);
    let id: unknown;
    try {
      id = idOf(job);
    } catch (error) {
      throw error instanceof OnceOnlyError ? new UnrecoverableJobError(error) : error;
    }
    // Kept to read its signal after a failure only (the processor makes a signal when it is read).
    let ran: HandlerContext<D> | undefined;
    // The processor's context carries `tx` when its store is transactional; the handler's type says so.
    const run = handler as JobHandler<D, R, unknown>;
    const outcome = await processor.process<D, R>(
      // With an instrumentation (e.g. @onceonly/otel): the producer's trace context and messaging attributes.
      processor.options.instrumentation === undefined ? { id, payload: job.data } : tracedMessage(id, job),
      (context) => {
        ran = context;
        return run(job, jobContext(context, job, lockToken));
      },
      processOptions,
    );
    // Stopped by a close, not by a fault of the job: back to the queue without using an attempt.
    if (outcome.status === 'failed' && !outcome.terminal && (isClosed(outcome.error) || isClosed(ran?.signal.reason))) {
      return requeue(job, lockToken, outcome.error);
    }
    return settle(outcome, job, lockToken);
  };

  const wrapped = (job: Job<D>, lockToken?: string): Promise<R> => {
    const run = runJob(job, lockToken);
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    running.add(settled);
    void settled.then(() => running.delete(settled));
    return run;
  };

  const close = async (graceMs: number): Promise<void> => {
    // The processors wait up to graceMs for their handlers, abort them, and resolve once every process()
    // call has an outcome; the jobs then settle with BullMQ (completed, failed, or back to the queue).
    await Promise.all(created.map((p) => p.close({ graceMs })));
    if (created.length > 0) await Promise.all(running);
    await Promise.all(owned.map((s) => s.close()));
  };
  return Object.assign(wrapped, {
    processors: () => (resolved.processor ? [resolved.processor] : [...created]) as DedupProcessor<S>[],
    close: (options: { graceMs?: number } = {}) => {
      const graceMs = options.graceMs ?? resolved.closeGraceMs;
      if (typeof graceMs !== 'number' || !Number.isInteger(graceMs) || graceMs < 0) {
        return Promise.reject(new InvalidOptionsError(`invalid close options: "graceMs" must be a non-negative integer, got ${String(graceMs)}`));
      }
      closing ??= close(graceMs);
      return closing;
    },
  });
}

function isClosed(error: unknown): boolean {
  return error instanceof OnceOnlyError && error.code === 'PROCESSOR_CLOSED';
}

/** Puts a job back in the queue (as a delayed job due now) without using an attempt. */
async function requeue(job: Job, lockToken: string | undefined, error: Error): Promise<never> {
  await job.moveToDelayed(Date.now(), lockToken);
  throw new DelayedError(error instanceof OnceOnlyError ? `${error.code}: ${error.message}` : error.message);
}

/**
 * As in the processor (core's `handlerContext`): on Node 20 an AbortSignal costs about 2.6 µs to
 * make, so the context reads it through only when the handler does; later versions get a plain field.
 */
const READ_SIGNAL_LAZILY = Number(process.versions.node.split('.')[0]) < 22;

/**
 * The handler's context: the processor's without the payload (the job carries the data), plus the job
 * and its lock token. Built field by field, not with spreads: this runs once per job, and an object
 * spread costs microseconds on Node 20.
 */
function jobContext<D>(context: HandlerContext<D> & { readonly tx?: unknown }, job: Job<D>, lockToken: string | undefined): JobContext<D, unknown> {
  const built: { -readonly [K in keyof BaseJobContext<D>]?: BaseJobContext<D>[K] } & { tx?: unknown } = READ_SIGNAL_LAZILY
    ? {
        scope: context.scope,
        id: context.id,
        token: context.token,
        get signal() {
          return context.signal;
        },
        takeover: context.takeover,
        replayed: false,
        job,
        lockToken,
      }
    : { scope: context.scope, id: context.id, token: context.token, signal: context.signal, takeover: context.takeover, replayed: false, job, lockToken };
  if (context.shadowOf !== undefined) built.shadowOf = context.shadowOf;
  if (context.tx !== undefined) built.tx = context.tx;
  return built as JobContext<D, unknown>;
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
    case 'dead-lettered':
      // Only batches with a dead-letter hook answer this; a job's failure path is BullMQ's own.
      throw outcome.error instanceof OnceOnlyError ? new UnrecoverableJobError(outcome.error) : outcome.error;
  }
}
