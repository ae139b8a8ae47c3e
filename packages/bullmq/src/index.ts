/**
 * `@onceonly/bullmq`: effectively-once BullMQ job handlers.
 *
 * Producers stamp each job with a message ID (`addStamped`); workers wrap their handler (`onceonly`)
 * or build the Worker (`createWorker`). A repeat of an ID within the window completes without running
 * the handler, answered with the recorded result.
 *
 * @example
 * import { Queue } from 'bullmq';
 * import { addStamped, createWorker } from '@onceonly/bullmq';
 *
 * await addStamped(queue, 'welcome', { userId: 42 });
 * createWorker('emails', async (job, { id, token }) => sendWelcome(job.data, { id, token }), {
 *   connection,
 *   onceonly: { store: new RedisStore({ client, prefix: 'emails' }), recordResults: true },
 * });
 *
 * @packageDocumentation
 */
export { onceonly, type BaseJobContext, type JobContext, type JobHandler, type WrappedProcessor } from './wrap-processor.js';
export { createWorker, type CreateWorkerOptions } from './create-worker.js';
export { addBulkStamped, addStamped, type QueueLike } from './producer.js';
export { DEFAULT_STAMP_KEY, readStamp, stamp, type JobData, type StampOptions } from './stamp.js';
export { UnrecoverableJobError, isUnrecoverable } from './errors.js';
/** Moved to @onceonly/core (the processor now coalesces by itself: its `coalesce` option); re-exported here. */
export { coalesceStore } from '@onceonly/core';
export type { AdapterOptions, IdSource, OnceOnlyWorkerOptions } from './options.js';
