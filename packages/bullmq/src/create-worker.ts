import type { DedupStore, TxOf } from '@onceonly/core';
import { Worker, type WorkerOptions } from 'bullmq';
import { onceonly, type JobHandler } from './wrap-processor.js';
import type { OnceOnlyWorkerOptions } from './options.js';

/** `WorkerOptions` plus the onceonly options under `onceonly`; `S` is the store's type. */
export type CreateWorkerOptions<D, S extends DedupStore = DedupStore> = WorkerOptions & { onceonly?: OnceOnlyWorkerOptions<D, S> };

/**
 * Builds a BullMQ `Worker` whose handler is effectively-once (see {@link onceonly}).
 *
 * `worker.close()` waits for running jobs as BullMQ's does, but not forever: after `closeGraceMs`
 * (default 10 s) the handlers still running are aborted (their `signal` fires with a
 * `ProcessorClosedError`) and their jobs go back to the queue without using an attempt, so a handler
 * that never returns cannot hang the close. `worker.close(true)` (force: do not wait for running jobs)
 * aborts them at once. Closing also stops the leases and closes the stores the wrapper created. With a
 * shared `processor`, closing it is up to you (set its `handlerTimeoutMs` to bound its handlers).
 *
 * With a transactional store (`PostgresStore`) the handler's context has `tx`, typed from the store
 * (see {@link onceonly}): its writes commit together with the completion.
 *
 * @throws {InvalidOptionsError} naming each wrong or unknown onceonly option, before the Worker is made.
 */
export function createWorker<D = unknown, R = unknown, S extends DedupStore = DedupStore>(
  queueName: string,
  handler: JobHandler<D, R, TxOf<S>>,
  options: CreateWorkerOptions<D, S>,
): Worker<D, R> {
  const { onceonly: dedup, ...workerOptions } = options;
  const processor = onceonly<D, R, S>(handler, dedup?.processor ? dedup : { scope: queueName, ...dedup });
  const worker = new Worker<D, R>(queueName, processor, workerOptions);
  const close = worker.close.bind(worker);
  let closing: Promise<void> | undefined;
  worker.close = (force = false) => {
    // BullMQ stops taking jobs and (unless forced) waits for the running ones; the wrapper meanwhile
    // gives their handlers the grace period, then aborts them, so the wait ends.
    closing ??= Promise.all([close(force), processor.close(force ? { graceMs: 0 } : {})]).then(() => undefined);
    return closing;
  };
  return worker;
}
