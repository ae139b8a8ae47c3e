import { OnceOnlyError, type ErrorCode } from '@onceonly/core';
import { UnrecoverableError } from 'bullmq';

/**
 * A onceonly error that no retry can fix (bad ID, payload conflict, remembered failure, dead-letter),
 * thrown as BullMQ's `UnrecoverableError` so the job fails at once whatever its `attempts`.
 * The job's `failedReason` starts with the stable `code`; `cause` is the typed error.
 */
export class UnrecoverableJobError extends UnrecoverableError {
  readonly code: ErrorCode;
  override readonly cause: OnceOnlyError;

  constructor(error: OnceOnlyError) {
    super(`${error.code}: ${error.message}`);
    // BullMQ also recognises unrecoverable errors by name (e.g. across two copies of bullmq).
    this.name = 'UnrecoverableError';
    this.code = error.code;
    this.cause = error;
  }
}

/** True for errors a handler throws to say "do not retry": BullMQ's `UnrecoverableError`. */
export function isUnrecoverable(error: Error): boolean {
  return error instanceof UnrecoverableError || error.name === 'UnrecoverableError';
}
