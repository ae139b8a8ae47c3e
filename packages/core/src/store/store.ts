/**
 * The store contract: every backend (memory, Redis, ...) implements these transitions, each atomically.
 *
 * ```
 * absent ──claim──▶ in-progress ──complete──▶ completed (kept for the window)
 *                      │  ├──release (retryable failure)──▶ absent
 *                      │  ├──fail (terminal failure)──────▶ failed (kept for the window)
 *                      │  └──lease expires──▶ absent (next claim gets a higher fencing token)
 * ```
 *
 * Timeline of one ID (lease 30 s, window 24 h):
 * - t=0      claim → acquired, token 1, lease until t=30 s, record kept until t=24 h.
 * - t=10 s   extend(token 1) → lease until t=40 s (the processor's heartbeat does this).
 * - t=12 s   complete(token 1) → completed; the record is kept until t=12 s + 24 h.
 * - t=1 h    claim → completed: a duplicate, answered with the recorded result.
 * - t=24 h+  the record is gone: the ID is new again.
 *
 * "Absent" after a release or an expired lease is logical: stores keep the fencing token of the ID
 * (for the window) so that the next claim gets a higher one and a stale owner can never complete,
 * extend or release over a newer one. Lease expiry is judged by the store's clock (Redis: server
 * time), so workers with skewed clocks agree.
 */

/** The state of a record as a caller sees it. A released or expired-lease record reads as absent. */
export type RecordState = 'in-progress' | 'completed' | 'failed';

/** What the store keeps per (scope, ID). Times are milliseconds since the Unix epoch, store clock. */
export interface DedupRecord {
  readonly state: RecordState;
  /** Fencing token of the latest successful claim. */
  readonly token: number;
  /** Payload fingerprint given at claim time, if any. */
  readonly fingerprint?: string;
  /** When the current claim was made. */
  readonly claimedAt: number;
  /** When the record reached its current state. */
  readonly updatedAt: number;
  /** In-progress only: when the lease runs out unless extended. */
  readonly leaseUntil?: number;
  /** Completed only, when results are recorded: the serialised handler result. */
  readonly result?: string;
  /** Failed only: the error code or name recorded for the terminal failure (never a message or payload). */
  readonly error?: string;
}

export interface ClaimRequest {
  readonly scope: string;
  readonly id: string;
  /** Payload fingerprint to keep on the record; compared by the processor on later deliveries. */
  readonly fingerprint?: string;
  /** Lease duration. */
  readonly leaseMs: number;
  /** How long the record is kept while in progress or released (so the fencing token survives). */
  readonly windowMs: number;
}

/**
 * The answer to a claim, in one step whatever the outcome.
 * - `acquired`: the caller owns the ID with `token`; `takeover` is true when a previous owner's lease
 *   had expired mid-handler (its side effect may or may not have happened).
 * - `completed` / `failed`: a finished record exists (a duplicate).
 * - `in-progress`: another owner holds a live lease.
 */
export type ClaimResult =
  | { readonly status: 'acquired'; readonly token: number; readonly takeover: boolean; readonly leaseUntil: number }
  | { readonly status: 'completed' | 'failed' | 'in-progress'; readonly record: DedupRecord };

/** Identifies an owned claim for extend/complete/release/fail. */
export interface OwnedRef {
  readonly scope: string;
  readonly id: string;
  /** The fencing token returned by the claim. A stale token is rejected with `lease-lost`. */
  readonly token: number;
}

export interface ExtendRequest extends OwnedRef {
  readonly leaseMs: number;
}

export interface CompleteRequest extends OwnedRef {
  /** Serialised result to keep, when results are recorded. */
  readonly result?: string;
  /** How long the completed record is kept. */
  readonly windowMs: number;
}

export interface FailRequest extends OwnedRef {
  /** A short error code or name (not a message: it may carry payload data). */
  readonly error: string;
  readonly windowMs: number;
}

/** `ok`: the transition happened. `lease-lost`: the token is stale or the record is no longer in progress. */
export type TransitionResult = 'ok' | 'lease-lost';

/**
 * A windowed dedup store. Every method is one atomic step in the store, and the `*Many` forms are one
 * round trip for the whole batch. Methods reject with a `StoreUnavailableError` when the store cannot
 * be reached; they never reject for a lost lease (that is a `TransitionResult`).
 */
export interface DedupStore {
  claim(request: ClaimRequest): Promise<ClaimResult>;
  claimMany(requests: readonly ClaimRequest[]): Promise<ClaimResult[]>;
  extend(request: ExtendRequest): Promise<TransitionResult>;
  extendMany(requests: readonly ExtendRequest[]): Promise<TransitionResult[]>;
  complete(request: CompleteRequest): Promise<TransitionResult>;
  completeMany(requests: readonly CompleteRequest[]): Promise<TransitionResult[]>;
  release(request: OwnedRef): Promise<TransitionResult>;
  releaseMany(requests: readonly OwnedRef[]): Promise<TransitionResult[]>;
  fail(request: FailRequest): Promise<TransitionResult>;
  /** Reads a record without changing it. Absent, released and expired-lease records read as `undefined`. */
  get(scope: string, id: string): Promise<DedupRecord | undefined>;
  /** Releases resources the store owns (never a client the caller passed in). */
  close(): Promise<void>;
}
