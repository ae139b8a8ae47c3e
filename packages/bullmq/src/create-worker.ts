import { Worker, type WorkerOptions } from 'bullmq';
import { onceonly, type JobHandler } from './wrap-processor.js';
import type { OnceOnlyWorkerOptions } from './options.js';

/** `WorkerOptions` plus the onceonly options under `onceonly`. */
export type CreateWorkerOptions<D> = WorkerOptions & { onceonly?: OnceOnlyWorkerOptions<D> };

/**
 * Builds a BullMQ `Worker` whose handler is effectively-once (see {@link onceonly}). Closing the worker
 * also stops the leases and closes the stores the wrapper created.
 */
export function createWorker<D = unknown, R = unknown>(queueName: string, handler: JobHandler<D, R>, options: CreateWorkerOptions<D>): Worker<D, R> {
  const { onceonly: dedup, ...workerOptions } = options;
  const processor = onceonly<D, R>(handler, dedup?.processor ? dedup : { scope: queueName, ...dedup });
  const worker = new Worker<D, R>(queueName, processor, workerOptions);
  const close = worker.close.bind(worker);
  worker.close = async (force?: boolean) => {
    await close(force);
    await processor.close();
  };
  return worker;
}
