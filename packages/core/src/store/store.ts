/**
 * The store contract: every backend (memory, Redis, ...) implements these transitions, each atomically.
 *
 * ```
 * absent ──claim──▶ in-progress ──complete──▶ completed (kept for the window)
 *                      │  ├──release (retryable failure)──▶ absent
 *                      │  ├──fail (terminal failure)──────▶ failed (kept for the window)
 *                      │  └──lease expires──▶ absent, suspect (next claim: higher token, takeover)
 * ```
 *
 * **Suspect records.** A claim that finds an expired lease is a takeover: the previous owner may have
 * applied its effect. From then on the record is *suspect* until a completion or a recorded failure:
 * releasing the takeover claim (a batch that stops before it, a retryable handler error, a rebalance)
 * or letting its lease expire again never clears that, so the next claim is again `takeover: true` and
 * the processor's takeover policy still applies. Only a release of a claim that was not suspect reads
 * as plain absent (`takeover: false`) to the next claim.
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
 * - `acquired`: the caller owns the ID with `token`; `takeover` is true when the record is suspect: a
 *   previous owner's lease had expired mid-handler, now or before a later release (its side effect may
 *   or may not have happened).
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
 * The longest window (and lease) onceonly accepts: ten years. Every store must honour durations up to
 * it; a store that cannot says so with {@link DedupStore.maxDurationMs}, and the processor refuses
 * longer options at construction.
 */
export const MAX_WINDOW_MS = 10 * 366 * 24 * 3_600_000;

/**
 * A windowed dedup store. Every method is one atomic step in the store, and the `*Many` forms are one
 * round trip for the whole batch. Methods reject with a `StoreUnavailableError` when the store cannot
 * be reached; they never reject for a lost lease (that is a `TransitionResult`).
 */
export interface DedupStore {
  /**
   * The longest lease or window this store can keep exactly, if it has a limit below
   * {@link MAX_WINDOW_MS}. A processor with a longer `windowMs` or `leaseMs` fails at construction.
   */
  readonly maxDurationMs?: number;
  /**
   * Optional: `false` when the store knows it cannot be reached right now (e.g. its connection is
   * down). A batch checks it before each handler, so nothing more runs while the store is unreachable.
   */
  isAvailable?(): boolean;
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

/**
 * An offset high-water mark: per (scope, name) — for Kafka the name is `<topic>:<partition>` and the
 * scope the consumer group — the inclusive range of positions known to be completed. It lives next to
 * the ID records (in Redis: in the scope's hash slot) and, unlike them, does not expire with the
 * window, so a replay of positions inside it is skipped even after their IDs are gone.
 */
export interface MarkRef {
  readonly scope: string;
  readonly name: string;
}

/** An inclusive, contiguous range of completed positions. */
export interface MarkRange {
  readonly low: number;
  readonly high: number;
}

/** A claim that carries its position (Kafka offset), so the store can answer it from the mark. */
export interface PositionedClaimRequest extends ClaimRequest {
  readonly position: number;
}

/**
 * Advances a mark over the contiguous run `from..to` of completed positions. The store extends the
 * range when the run touches or overlaps it (`from <= high + 1` and `to >= low - 1`). A run that starts
 * after a gap replaces it (positions in the gap were never seen completed, so they must not be
 * skipped); a run wholly below it leaves it as it is. Applied only when every completion in the same
 * call succeeded.
 */
export interface MarkAdvance {
  readonly from: number;
  readonly to: number;
}

/**
 * Optional store capability: offset high-water marks read and advanced in the same round trip as a
 * batch claim and a batch completion, so a batch still costs exactly two round trips. The requests of
 * one call have the mark's scope and share one `leaseMs` and `windowMs` (as a processor's batch
 * does); a store may reject others with a `TypeError`.
 */
export interface MarkStore {
  /**
   * Reads the mark, then claims every request whose position is outside it (`skipMarked: false`
   * claims all). Answers `undefined` for a request inside the mark: it was not claimed. One round trip.
   */
  claimManyMarked(
    mark: MarkRef,
    requests: readonly PositionedClaimRequest[],
    skipMarked: boolean,
  ): Promise<{ mark: MarkRange | undefined; claims: (ClaimResult | undefined)[] }>;
  /**
   * Completes the requests and, when every completion succeeded and `advance` is given, advances the
   * mark. One round trip. Answers the completions and the mark after the call.
   */
  completeManyMarked(
    mark: MarkRef,
    requests: readonly CompleteRequest[],
    advance: MarkAdvance | undefined,
  ): Promise<{ results: TransitionResult[]; mark: MarkRange | undefined }>;
  /** Reads a mark without changing it. */
  getMark(mark: MarkRef): Promise<MarkRange | undefined>;
  /** Removes a mark (e.g. to forget a group's history on purpose). */
  deleteMark(mark: MarkRef): Promise<void>;
}

/**
 * A store forgot a scope: the records it held are gone (Redis restarted without persistence, a
 * `FLUSHALL`, a failover to a replica that never had them). IDs completed before it will run again
 * if they are delivered again within their window.
 * - `missing`: the scope's epoch marker this store saw before is gone (a new one was written);
 * - `changed`: the scope holds another epoch than the one this store saw (another worker wrote a new
 *   one after the loss).
 */
export interface StoreResetEvent {
  readonly scope: string;
  readonly reason: 'missing' | 'changed';
  /** The epoch this store saw before. */
  readonly previousEpoch: string;
  /** The scope's epoch now. */
  readonly epoch: string;
}

/**
 * Optional store capability: the store notices when it forgot a scope (see {@link StoreResetEvent}).
 * A store learns a scope's epoch from its claims, so it reports a loss that happened while it was
 * running; a process that starts after a loss cannot tell it from a fresh store.
 */
export interface ResetReportingStore {
  /**
   * Calls `listener` once per detected loss, per scope, synchronously during the claim call that
   * found it (before that call resolves). Returns a function that unsubscribes.
   */
  onReset(listener: (event: StoreResetEvent) => void): () => void;
}

/** True when `store` reports resets ({@link ResetReportingStore}). */
export function reportsResets(store: DedupStore): store is DedupStore & ResetReportingStore {
  return typeof (store as Partial<ResetReportingStore>).onReset === 'function';
}

/** What a transactional completion needs: the owned claim and how long the completed record is kept. */
export interface TransactionalCompleteRequest extends OwnedRef {
  readonly windowMs: number;
}

/** What the work inside a transactional completion answers: its value, and the serialised result to record. */
export interface TransactionalWork<R> {
  readonly value: R;
  readonly result?: string | undefined;
}

/**
 * Optional store capability: the completion commits in the same transaction as the handler's own
 * writes (a store that lives in the user's database, e.g. PostgreSQL). Then a crash before the commit
 * rolls back the effect and the completion together, and a stale owner's writes roll back.
 */
export interface TransactionalStore<Tx> extends DedupStore {
  /**
   * Opens a transaction, runs `work(tx)`, then completes `request` in the same transaction (with its
   * fencing check, recording `result` when given) just before committing.
   * - the fence fails (another owner took the ID): rolls back, answers `transition: 'lease-lost'`;
   * - `work` throws: rolls back and rejects with its error (the claim stays owned: release or fail it);
   * - the database cannot be reached, or the commit fails: rejects with a `StoreUnavailableError`
   *   (the commit may or may not have happened; a release afterwards is fenced, so it is safe).
   */
  completeWithin<R>(request: TransactionalCompleteRequest, work: (tx: Tx) => Promise<TransactionalWork<R>>): Promise<{ transition: TransitionResult; value: R }>;
  /**
   * Runs `work(tx)` in a transaction with no completion: for handlers that run without a claim
   * (fail-open, shadow mode, `onConflict: 'process'`), which still expect a `tx`. Commits when `work`
   * resolves, rolls back and rethrows when it throws.
   */
  withTransaction<R>(work: (tx: Tx) => Promise<R>): Promise<R>;
}

/** The transaction type of a store: `Tx` for a {@link TransactionalStore}, else `never`. */
export type TxOf<S> = S extends TransactionalStore<infer Tx> ? Tx : never;

/** True when `store` completes inside the handler's transaction ({@link TransactionalStore}). */
export function isTransactional(store: DedupStore): store is TransactionalStore<unknown> {
  const s = store as Partial<TransactionalStore<unknown>>;
  return typeof s.completeWithin === 'function' && typeof s.withTransaction === 'function';
}

/** True when `store` also implements {@link MarkStore}. */
export function supportsMarks(store: DedupStore): store is DedupStore & MarkStore {
  const s = store as Partial<MarkStore>;
  return typeof s.claimManyMarked === 'function' && typeof s.completeManyMarked === 'function' && typeof s.getMark === 'function';
}

/** The mark after advancing `current` by `run` (see {@link MarkAdvance}). Shared by the stores' logic. */
export function advanceMark(current: MarkRange | undefined, run: MarkAdvance): MarkRange {
  if (current && run.from <= current.high + 1 && run.to >= current.low - 1) {
    return { low: Math.min(current.low, run.from), high: Math.max(current.high, run.to) };
  }
  if (current && run.to < current.low) return current;
  return { low: run.from, high: run.to };
}
