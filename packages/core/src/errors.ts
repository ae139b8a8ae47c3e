import type { DedupRecord } from './store/store.js';

/** Stable error codes. A code never changes meaning; new ones may be added. */
export const ErrorCode = {
  ID_MISSING: 'ID_MISSING',
  ID_INVALID: 'ID_INVALID',
  ID_TOO_LONG: 'ID_TOO_LONG',
  INVALID_OPTIONS: 'INVALID_OPTIONS',
  STORE_UNAVAILABLE: 'STORE_UNAVAILABLE',
  IN_PROGRESS: 'IN_PROGRESS',
  LEASE_LOST: 'LEASE_LOST',
  PAYLOAD_CONFLICT: 'PAYLOAD_CONFLICT',
  TAKEOVER_DEAD_LETTER: 'TAKEOVER_DEAD_LETTER',
  RECORDED_FAILURE: 'RECORDED_FAILURE',
  FINGERPRINT_FAILED: 'FINGERPRINT_FAILED',
  RESULT_NOT_SERIALIZABLE: 'RESULT_NOT_SERIALIZABLE',
  HANDLER_TIMEOUT: 'HANDLER_TIMEOUT',
  PROCESSOR_CLOSED: 'PROCESSOR_CLOSED',
  CALLBACK_FAILED: 'CALLBACK_FAILED',
  TRANSACTION_ENDED: 'TRANSACTION_ENDED',
  TRANSACTION_ABORTED: 'TRANSACTION_ABORTED',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface OnceOnlyErrorOptions {
  cause?: unknown;
  /** The record found in the store, where it helps the caller decide. */
  record?: DedupRecord;
}

/**
 * Base of every error onceonly throws. `retriable` says whether redelivering the message can succeed:
 * adapters let the broker retry retriable errors and send the rest down its failure path.
 */
export class OnceOnlyError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;
  readonly record: DedupRecord | undefined;

  constructor(code: ErrorCode, message: string, retriable: boolean, options: OnceOnlyErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retriable = retriable;
    this.record = options.record;
  }
}

/** The message ID is missing, empty, malformed or too long. Redelivery cannot fix it. */
export class InvalidIdError extends OnceOnlyError {
  constructor(code: 'ID_MISSING' | 'ID_INVALID' | 'ID_TOO_LONG', message: string) {
    super(code, message, false);
  }
}

/** An option failed validation at construction. The message names the option. */
export class InvalidOptionsError extends OnceOnlyError {
  constructor(message: string, options?: OnceOnlyErrorOptions) {
    super('INVALID_OPTIONS', message, false, options);
  }
}

/** The store could not be reached or answered with an error. Nothing was marked; retry later. */
export class StoreUnavailableError extends OnceOnlyError {
  constructor(message: string, options?: OnceOnlyErrorOptions) {
    super('STORE_UNAVAILABLE', message, true, options);
  }
}

/** Another worker holds a live lease on the ID. Do not ack as done; retry after `retryAfterMs`. */
export class InProgressError extends OnceOnlyError {
  readonly retryAfterMs: number;
  constructor(message: string, retryAfterMs: number, options?: OnceOnlyErrorOptions) {
    super('IN_PROGRESS', message, true, options);
    this.retryAfterMs = retryAfterMs;
  }
}

/** The handler finished but the lease had passed to another owner; its completion was refused. */
export class LeaseLostError extends OnceOnlyError {
  constructor(message: string, options?: OnceOnlyErrorOptions) {
    super('LEASE_LOST', message, true, options);
  }
}

/** The same ID arrived with a different payload fingerprint and the conflict policy is `reject`. */
export class PayloadConflictError extends OnceOnlyError {
  constructor(message: string, options?: OnceOnlyErrorOptions) {
    super('PAYLOAD_CONFLICT', message, false, options);
  }
}

/** A takeover found under the `dead-letter` policy: a human has to decide whether the effect happened. */
export class TakeoverDeadLetterError extends OnceOnlyError {
  constructor(message: string, options?: OnceOnlyErrorOptions) {
    super('TAKEOVER_DEAD_LETTER', message, false, options);
  }
}

/** A terminal failure of this ID was remembered within the window; the handler is not run again. */
export class RecordedFailureError extends OnceOnlyError {
  constructor(message: string, options?: OnceOnlyErrorOptions) {
    super('RECORDED_FAILURE', message, false, options);
  }
}

/** The payload could not be fingerprinted (e.g. it is not JSON-serialisable). */
export class FingerprintError extends OnceOnlyError {
  constructor(message: string, options?: OnceOnlyErrorOptions) {
    super('FINGERPRINT_FAILED', message, false, options);
  }
}

/** The handler's result could not be serialised for recording. */
export class ResultSerializationError extends OnceOnlyError {
  constructor(message: string, options?: OnceOnlyErrorOptions) {
    super('RESULT_NOT_SERIALIZABLE', message, false, options);
  }
}

/**
 * The handler ran longer than `handlerTimeoutMs`: its signal was aborted with this error. Retriable. When
 * the handler did not settle after the abort, its claim is left to expire (it may still apply its
 * effect), so the next delivery is a takeover.
 */
export class HandlerTimeoutError extends OnceOnlyError {
  readonly timeoutMs: number;
  constructor(message: string, timeoutMs: number, options?: OnceOnlyErrorOptions) {
    super('HANDLER_TIMEOUT', message, true, options);
    this.timeoutMs = timeoutMs;
  }
}

/** The processor was closed: running handlers were aborted with this error, and new deliveries refused. Retriable. */
export class ProcessorClosedError extends OnceOnlyError {
  constructor(message: string, options?: OnceOnlyErrorOptions) {
    super('PROCESSOR_CLOSED', message, true, options);
  }
}

/** Which user callback failed. */
export type CallbackName = 'isTerminal' | 'reconcile' | 'fingerprint' | 'serializer.serialize' | 'serializer.deserialize';

/**
 * A user callback (`isTerminal`, `reconcile`, `fingerprint`, the serializer) threw or answered something
 * it may not. The claim is released (retriable) unless the outcome says otherwise; the original error
 * is the `cause`.
 */
export class CallbackError extends OnceOnlyError {
  readonly callback: CallbackName;
  constructor(callback: CallbackName, message: string, options?: OnceOnlyErrorOptions & { retriable?: boolean }) {
    super('CALLBACK_FAILED', message, options?.retriable ?? true, options);
    this.callback = callback;
  }
}

/** Normalises anything thrown into an Error, keeping the original as `cause`. */
export function toError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  return new Error(typeof thrown === 'string' ? thrown : 'non-error value thrown', { cause: thrown });
}
