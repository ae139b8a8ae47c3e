import type {
  InProgressError,
  LeaseLostError,
  PayloadConflictError,
  StoreUnavailableError,
} from '../errors.js';
import type { DedupRecord } from '../store/store.js';

interface Base {
  readonly scope: string;
  /** The validated ID, or the raw value when validation failed. */
  readonly id: string;
  /** True when no handler ran for this delivery and the answer comes from an earlier run. */
  readonly replayed: boolean;
}

/** This delivery ran the handler and the record is completed. Ack. */
export interface ProcessedOutcome<R> extends Base {
  readonly status: 'processed';
  readonly replayed: false;
  readonly result: R;
  readonly token: number;
  /** The claim took over an expired lease (see `onTakeover`). */
  readonly takeover: boolean;
  /** The store was unreachable and `onStoreError: 'fail-open'` ran the handler unprotected. */
  readonly failOpen?: true;
  /** Shadow mode: the handler ran although onceonly would have suppressed it for this reason. */
  readonly shadowOf?: 'duplicate' | 'in-progress' | 'conflict' | 'failed';
  /** `onConflict: 'process'`: the handler ran for a payload that differs from the recorded one. */
  readonly conflict?: true;
}

/** Already completed within the window. Ack without running; `result` is the recorded one (if recorded). */
export interface DuplicateOutcome<R> extends Base {
  readonly status: 'duplicate';
  readonly replayed: true;
  readonly result: R | undefined;
  readonly record: DedupRecord;
  /** A takeover whose `reconcile` answered "done": completed without running the handler. */
  readonly reconciled?: true;
  /** `onConflict: 'duplicate'`: the payload differs from the recorded one. */
  readonly conflict?: true;
  /** Answered by an offset high-water mark (its ID record may have expired); no result is available. */
  readonly belowMark?: true;
}

/** Another worker holds a live lease. Do not ack as done: retry after `retryAfterMs`. */
export interface InProgressOutcome extends Base {
  readonly status: 'in-progress';
  readonly replayed: false;
  readonly record: DedupRecord;
  readonly retryAfterMs: number;
  readonly error: InProgressError;
}

/** Same ID, different payload fingerprint, and `onConflict: 'reject'`. */
export interface ConflictOutcome extends Base {
  readonly status: 'conflict';
  readonly replayed: false;
  readonly record: DedupRecord;
  readonly error: PayloadConflictError;
}

/**
 * The handler threw (`replayed: false`), or a remembered terminal failure answered (`replayed: true`).
 * Retryable: the claim was released, let the broker retry. Terminal: hand to the broker's failure path.
 */
export interface FailedOutcome extends Base {
  readonly status: 'failed';
  readonly error: Error;
  readonly terminal: boolean;
  /** The failure is recorded in the store for the window. */
  readonly remembered: boolean;
  /**
   * The handler did not settle after a timeout or `close()` aborted it: the claim was left to expire
   * (it may still apply its effect), so the next delivery is a takeover.
   */
  readonly abandoned?: true;
  readonly record?: DedupRecord;
}

/** The handler finished, but another owner had taken the ID: the completion was refused. Never counted as processed. */
export interface LeaseLostOutcome<R> extends Base {
  readonly status: 'lease-lost';
  readonly replayed: false;
  readonly result: R;
  readonly token: number;
  readonly error: LeaseLostError;
}

/** The store could not be reached (fail-closed): nothing was marked; let the broker redeliver. */
export interface StoreUnavailableOutcome extends Base {
  readonly status: 'store-unavailable';
  readonly replayed: false;
  readonly error: StoreUnavailableError;
  /** True when the handler had already run (the completion could not be recorded). */
  readonly handlerRan: boolean;
}

/**
 * A message that could never succeed (bad ID, conflict, remembered failure, dead-lettered takeover,
 * terminal error, retries exhausted) was handed to the batch's dead-letter hook (e.g. published to a
 * dead-letter topic) and recorded as failed. Ack / commit past it. `replayed`: an earlier delivery was
 * dead-lettered already, so nothing was handed over this time.
 */
export interface DeadLetteredOutcome extends Base {
  readonly status: 'dead-lettered';
  /** Why the message could not succeed. */
  readonly error: Error;
  /** Handler runs made for it by this delivery (0 when it never ran). */
  readonly attempts: number;
}

export type Outcome<R = unknown> =
  | ProcessedOutcome<R>
  | DuplicateOutcome<R>
  | InProgressOutcome
  | ConflictOutcome
  | FailedOutcome
  | LeaseLostOutcome<R>
  | StoreUnavailableOutcome
  | DeadLetteredOutcome;

export type OutcomeStatus = Outcome['status'];

/** True for outcomes after which the message may be acked / its offset committed. */
export function isDone(outcome: Outcome<unknown>): boolean {
  return outcome.status === 'processed' || outcome.status === 'duplicate' || outcome.status === 'dead-lettered';
}

/** The result of `processBatch`. */
export interface BatchResult<R> {
  /**
   * One outcome per message, in input order, up to and including the first that is not done (failed,
   * in progress, conflict, lease lost, store unavailable), so this may be shorter than the input.
   * With `concurrency` > 1, messages after that one may have run too (their outcomes are emitted as
   * events); the rest were not run and their claims were released.
   */
  readonly outcomes: Outcome<R>[];
  /** How many leading messages are done (processed, duplicate or dead-lettered): ack or commit through `done - 1`. */
  readonly done: number;
}
