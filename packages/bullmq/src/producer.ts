import { InvalidOptionsError } from '@onceonly/core';
import type { BulkJobOptions, Job, JobsOptions } from 'bullmq';
import { DEFAULT_STAMP_KEY, stamp, type JobData, type StampOptions } from './stamp.js';
import { withTraceContext } from './trace-context.js';

/** The part of a BullMQ `Queue` the producer helpers use. */
export interface QueueLike<D = JobData> {
  add(name: string, data: D, opts?: JobsOptions): Promise<Job>;
  addBulk(jobs: { name: string; data: D; opts?: BulkJobOptions }[]): Promise<Job[]>;
}

function withJobId<O extends JobsOptions | BulkJobOptions>(data: JobData, opts: O | undefined, options: StampOptions): O | undefined {
  if (!options.jobId) return opts;
  const id = data[options.key ?? DEFAULT_STAMP_KEY] as string;
  if (id.includes(':')) throw new InvalidOptionsError(`"jobId: true" needs an ID without ":" (BullMQ rejects it in a jobId): ${JSON.stringify(id)}`);
  if (opts?.jobId !== undefined && opts.jobId !== id) {
    throw new InvalidOptionsError(`"jobId: true" conflicts with opts.jobId ${JSON.stringify(opts.jobId)}; give one or the other`);
  }
  return { ...opts, jobId: id } as O;
}

/**
 * `queue.add` with a stamped message ID in `data` (see {@link stamp}). Stamp once and re-add the
 * returned job's data to retry an add: the ID stays the same, so the consumer recognises the repeat.
 *
 * @throws {InvalidIdError} (rejects) when the ID `data` already carries is one the worker would refuse
 * (empty, not a string, longer than `maxIdBytes`, control characters); nothing is added.
 * @throws {InvalidOptionsError} (rejects) on wrong options or data that cannot carry a stamp.
 */
export async function addStamped<D extends JobData>(
  queue: QueueLike<D>,
  name: string,
  data: D,
  opts?: JobsOptions,
  options: StampOptions = {},
): Promise<Job> {
  const stamped = stamp(data, options) as D;
  return queue.add(name, stamped, withTraceContext(withJobId(stamped, opts, options), options.inject));
}

/**
 * `queue.addBulk` with every job's data stamped (jobs that already carry an ID keep it).
 *
 * @throws {InvalidIdError} (rejects) when any job carries an ID the worker would refuse; every job is
 * checked before the call, so nothing of the batch is added.
 */
export async function addBulkStamped<D extends JobData>(
  queue: QueueLike<D>,
  jobs: readonly { name: string; data: D; opts?: BulkJobOptions }[],
  options: StampOptions = {},
): Promise<Job[]> {
  const stamped = jobs.map((job) => {
    const data = stamp(job.data, options) as D;
    return { name: job.name, data, opts: withTraceContext(withJobId(data, job.opts, options), options.inject) };
  });
  return queue.addBulk(stamped);
}
