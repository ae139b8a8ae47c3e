// What the processor and its batch runner share. Not part of the public API.
import type { InvalidIdError } from '../errors.js';
import type { ClaimRequest, ClaimResult, DedupRecord, DedupStore, PositionedClaimRequest, TransitionResult } from '../store/store.js';
import type { BaseHandlerContext, Message } from './context.js';
import type { MessageInfo } from './instrumentation.js';
import type { KeptLease } from './lease-keeper.js';
import type { ResolvedProcessorOptions } from './options.js';
import type { FailedOutcome, Outcome, ProcessedOutcome } from './outcome.js';

export type ShadowReason = 'duplicate' | 'in-progress' | 'conflict' | 'failed';

/** A validated message, ready to claim. */
export interface Prepared<P> {
  readonly id: string;
  readonly payload: P | undefined;
  readonly fingerprint: string | undefined;
}

/**
 * What running a handler under a claim gave: a result to complete (or, with a transactional store,
 * already completed: `completed`), or an outcome with the claim settled.
 */
export type Ran<R> =
  | { kind: 'done'; result: R; serialized: string | undefined; completed?: TransitionResult }
  | { kind: 'outcome'; outcome: Outcome<R> };

/** A handler as the processor calls it: `tx` is given only with a transactional store. */
export type AnyHandler<P, R> = (context: BaseHandlerContext<P> & { readonly tx?: unknown }) => R | Promise<R>;

/** The processor's steps a batch run is made of. */
export interface BatchHost {
  readonly scope: string;
  readonly store: DedupStore;
  readonly options: Readonly<ResolvedProcessorOptions>;
  isClosed(): boolean;
  /** Store errors counted so far (a batch stops when it grows). */
  storeErrors(): number;
  prepare<P>(message: { id: unknown; payload?: P }): Prepared<P> | FailedOutcome;
  /** The failed outcome of a message whose ID an adapter could not read. */
  invalid(id: unknown, error: InvalidIdError): FailedOutcome;
  claimRequest(p: Prepared<unknown>): ClaimRequest;
  /** The claim request with the message's mark position, built in one object (no copy per message). */
  markedClaimRequest(p: Prepared<unknown>, position: number): PositionedClaimRequest;
  /** Synchronous when the handler returns synchronously (and no takeover policy or transaction is involved). */
  runClaimed<P, R>(p: Prepared<P>, token: number, takeover: boolean, handler: AnyHandler<P, R>, controller: AbortController, shared: boolean, deferFailure?: boolean): Ran<R> | Promise<Ran<R>>;
  answerExisting<P, R>(p: Prepared<P>, claim: Exclude<ClaimResult, { status: 'acquired' }>, handler: AnyHandler<P, R>): Promise<Outcome<R>>;
  runUnprotected<P, R>(p: Prepared<P>, handler: AnyHandler<P, R>, why: { failOpen?: Error; shadowOf?: ShadowReason; conflict?: true }): Promise<Outcome<R>>;
  repeatConflict<P, R>(p: Prepared<P>, record: DedupRecord, handler: AnyHandler<P, R>): Promise<Outcome<R>>;
  recordOf(first: Prepared<unknown>, claim: ClaimResult | undefined): DedupRecord;
  completedRecord(outcome: ProcessedOutcome<unknown>): DedupRecord;
  storeUnavailable(id: string, thrown: unknown, handlerRan: boolean): Outcome<never>;
  leaseLost<R>(id: string, token: number, result: R): Outcome<R>;
  storeError(id: string, operation: string, thrown: unknown): void;
  withAttempts<T>(operation: () => Promise<T>): Promise<T>;
  keepLease(lease: KeptLease): void;
  dropLease(lease: KeptLease): void;
  emit<O extends Outcome<unknown>>(outcome: O): O;
  messageInfo(message: Message<unknown>): MessageInfo;
  poisoned(event: { id: string; error: Error; attempts: number; deadLettered: boolean; where: Readonly<Record<string, string | number>> | undefined }): void;
}
