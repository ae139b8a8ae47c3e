/** Set by the producer once all its jobs are in the queue (JSON of {@link ProducerDone}). */
export const PRODUCER_DONE_KEY = 'emails:producer-done';

export interface ProducerDone {
  /** How many jobs the producer added, repeats included. */
  jobs: number;
  /** When it finished adding them (ms since the epoch). */
  at: number;
}

/** A welcome email job's data. */
export type Welcome = { to: string };

/** What the worker's handler returns, recorded by onceonly and returned again for duplicates. */
export type Sent = { sentTo: string; jobId: string | undefined; at: string };
