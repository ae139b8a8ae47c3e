import {
  InvalidOptionsError,
  StoreUnavailableError,
  type AdminCountOptions,
  type AdminCounts,
  type AdminListOptions,
  type AdminPage,
  type AdminPurgeResult,
  type AdminPurgeScopeOptions,
  type AdminRecord,
  type AdminStore,
  type ClaimRequest,
  type ClaimResult,
  type CompleteRequest,
  type DedupRecord,
  type ExtendRequest,
  type FailRequest,
  type MarkAdvance,
  type MarkRange,
  type MarkRef,
  type MarkStore,
  type OwnedRef,
  type PositionedClaimRequest,
  type TransactionalCompleteRequest,
  type TransactionalStore,
  type TransactionalWork,
  type TransitionResult,
} from '@onceonly/core';
import type { Pool, PoolClient, QueryResult, QueryResultRow } from 'pg';
import { PostgresAdmin } from './admin.js';
import { isConnectionError, storeUnavailable, TransactionStateError } from './errors.js';
import { parsePostgresStoreOptions, type PostgresStoreOptions, type TransactionRunner } from './postgres-store-options.js';
import {
  checkDuration,
  checkId,
  checkMarkName,
  checkPosition,
  checkScope,
  checkText,
  checkToken,
  claimColumns,
  completeColumns,
  extendColumns,
  ownedColumns,
  type ClaimColumns,
} from './requests.js';
import { decodeClaimRow, decodeMark, decodeRecordRow, repeatAnswer, type ClaimRow, type RecordRow } from './rows.js';
import { migrate } from './schema.js';
import { qualify, type TableNames } from './sql.js';
import { buildStatements, FENCE_FAILED, type Statement, type Statements } from './statements.js';

/** Statements a claim may take when it keeps racing concurrent claims of the same new IDs. */
const MAX_CLAIM_STATEMENTS = 5;

/** Marks of the transactions opened through a `transaction` option (see `markTransaction`). */
let transactionMarks = 0;

/** Thrown inside a `transaction` option's `run` to make the library roll back (a failed fence). */
const ROLL_BACK = Symbol('onceonly: roll back');

/** The row of the guarded completion (`completeInTransaction` in statements.ts). */
interface CompletionRow {
  open: boolean;
  completed: number;
}

/** Options of {@link PostgresStore.prune}. */
export interface PruneOptions {
  /** Rows deleted per statement. @defaultValue the store's `pruneBatchSize` (1000) */
  batchSize?: number;
  /** Stop after this many statements, even if expired rows remain. @defaultValue no limit */
  maxBatches?: number;
}

/**
 * The PostgreSQL store: shared by every worker, durable, and transactional — a handler's writes and
 * its completion can commit together ({@link PostgresStore.completeWithin}).
 *
 * **Tables.** Records in `<schema>.<table>` (default `public.onceonly_records`), one row per
 * (scope, id), primary key (scope, id); offset marks in `<schema>.<marksTable>`. Create them with
 * {@link PostgresStore.migrate}, the package's `sql/schema.sql`, or {@link schemaSql} for your own
 * migration tool (or `createSchema: true`). IDs and scopes are kept as given, as `text` in byte order
 * (`COLLATE "C"`), so every distinct string is a distinct record; PostgreSQL text cannot hold U+0000,
 * so IDs with it (or with a lone surrogate) are refused with `InvalidIdError` (the processor's
 * `validateId` refuses them already). IDs up to 2048 bytes of UTF-8, scopes up to 512.
 *
 * **One statement per call.** Every call is one SQL statement — a batch too, over arrays (`unnest`),
 * however many scopes it spans: one round trip. A duplicate claim is a plain read (no write, no lock).
 * The one exception: a claim that races another claim of the same *new* ID (inserted after the
 * statement began) is claimed again in a second statement, for that ID only.
 *
 * **Clock and tokens.** Leases and windows are judged by the database clock, read once per statement
 * (`statement_timestamp()`), so workers with skewed clocks agree. Expired rows read as absent; nothing
 * needs a cron for correctness, and {@link PostgresStore.prune} (or `pruneIntervalMs`) only reclaims
 * space. A released or expired-lease record keeps its fencing token, so the next claim gets a higher
 * one; the first token of an ID with no live row is the clock in microseconds, so tokens keep growing
 * after a window ends and a stalled worker can never match a newer owner's token.
 *
 * **Pool.** You create and end the pool (`close()` leaves it open). Give it an `'error'` listener, a
 * `connectionTimeoutMillis` to fail fast while the database is down, and a `statement_timeout` to
 * bound a statement stuck behind a lock. A statement that times out on the client may still run on
 * the server; that is safe here: a claim nobody heard of is a lease that expires, and a stale token
 * is fenced.
 *
 * **Transactions.** The store is transactional ({@link PostgresStore.completeWithin}): handlers get
 * `ctx.tx`, a `pg` client of the pool inside `BEGIN` (`Tx` = `PoolClient`). With the `transaction`
 * option the transaction is opened by your query builder or ORM instead, and `ctx.tx` is its
 * transaction object (`Tx`, given as the type argument: `new PostgresStore<Transaction<DB>>(…)`).
 *
 * **Admin.** It is an `AdminStore` too (inspect, list, count and purge, for operators and the
 * `onceonly` CLI): keyset steps over the primary key, never on the hot path (see `./admin.ts`).
 *
 * **Errors.** Every connection or query failure rejects with `StoreUnavailableError` (`retriable:
 * true`, code `STORE_UNAVAILABLE`, the pg error as `cause`, only the SQLSTATE in the message: no
 * payload). A lost lease is never an error: it is the `'lease-lost'` result. Invalid requests reject
 * before anything is sent.
 *
 * @example
 * import pg from 'pg';
 * import { PostgresStore } from '@onceonly/postgres';
 *
 * const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, connectionTimeoutMillis: 5_000 });
 * pool.on('error', () => {}); // idle connections that drop; the next call reports the outage
 * const store = new PostgresStore({ pool });
 * await store.migrate(); // once, or apply sql/schema.sql in your migrations
 *
 * const claim = await store.claim({ scope: 'emails', id: messageId, leaseMs: 30_000, windowMs: 86_400_000 });
 * if (claim.status === 'acquired') {
 *   await sendEmail();
 *   await store.complete({ scope: 'emails', id: messageId, token: claim.token, windowMs: 86_400_000 });
 * }
 */
export class PostgresStore<Tx = PoolClient> implements TransactionalStore<Tx>, MarkStore, AdminStore {
  readonly #pool: Pool;
  /** The `transaction` option: transactions opened through the user's library. */
  readonly #runner: TransactionRunner<unknown> | undefined;
  readonly #names: TableNames;
  readonly #tables: string;
  readonly #statements: Statements;
  readonly #prepared: boolean;
  readonly #createSchema: boolean;
  readonly #pruneBatchSize: number;
  readonly #onPruneError: ((error: Error) => void) | undefined;
  #migrated: Promise<void> | undefined;
  #reachable = true;
  #pruneTimer: ReturnType<typeof setInterval> | undefined;
  #pruning: Promise<unknown> | undefined;
  #admin: PostgresAdmin | undefined;

  /**
   * @throws {InvalidOptionsError} when an option is invalid; the message names it.
   * @example
   * const store = new PostgresStore({ pool, schema: 'app', table: 'dedup', marksTable: 'dedup_marks' });
   */
  constructor(options: PostgresStoreOptions<Tx>) {
    const parsed = parsePostgresStoreOptions(options);
    this.#pool = parsed.pool;
    this.#runner = parsed.transaction;
    this.#names = { schema: parsed.schema, table: parsed.table, marksTable: parsed.marksTable };
    const qualified = qualify(this.#names);
    this.#tables = `${qualified.display}, ${qualified.marksDisplay}`;
    this.#statements = buildStatements(qualified);
    this.#prepared = parsed.preparedStatements;
    this.#createSchema = parsed.createSchema;
    this.#pruneBatchSize = parsed.pruneBatchSize;
    this.#onPruneError = parsed.onPruneError;
    if (parsed.pruneIntervalMs !== undefined) {
      this.#pruneTimer = setInterval(() => this.#prunePeriodically(), parsed.pruneIntervalMs);
      this.#pruneTimer.unref();
    }
  }

  /** Where the store keeps its records and marks. */
  get tables(): TableNames {
    return this.#names;
  }

  /**
   * Creates the tables and the expiry index if they do not exist. Idempotent, and safe when many
   * workers call it at once (one transaction under an advisory lock). Needs CREATE on the schema.
   * @throws {StoreUnavailableError} when the database cannot be reached or refuses the DDL.
   * @example
   * await new PostgresStore({ pool }).migrate();
   */
  async migrate(): Promise<void> {
    try {
      await migrate(this.#pool, this.#names);
      this.#reachable = true;
    } catch (error) {
      if (isConnectionError(error)) this.#reachable = false;
      throw storeUnavailable('migrate', error, this.#tables);
    }
  }

  /**
   * Claims (scope, id) in one statement: `acquired` with a fencing token, or the existing record
   * (`completed`, `failed`, `in-progress`). Takes over an in-progress record whose lease has expired
   * (`takeover: true`, next token).
   * @example
   * const result = await store.claim({ scope: 'emails', id, fingerprint, leaseMs: 30_000, windowMs: 86_400_000 });
   * if (result.status === 'completed') return result.record.result; // a duplicate
   */
  async claim(request: ClaimRequest): Promise<ClaimResult> {
    return (await this.#claim('claim', [request], claimColumns([request], false), undefined)).claims[0]!;
  }

  /**
   * Claims a batch in one statement, whatever its size and scopes; answers are in request order. A
   * request that repeats an earlier (scope, id) of the batch is answered as if claimed right after it.
   * @example
   * const results = await store.claimMany(messages.map((m) => ({ scope: 'orders', id: m.id, leaseMs, windowMs })));
   */
  async claimMany(requests: readonly ClaimRequest[]): Promise<ClaimResult[]> {
    if (requests.length === 0) return [];
    return (await this.#claim('claimMany', requests, claimColumns(requests, false), undefined)).claims as ClaimResult[];
  }

  /** Extends the lease to now + `leaseMs` (database clock; never shortens it). `lease-lost` for a stale token. */
  async extend(request: ExtendRequest): Promise<TransitionResult> {
    return (await this.#extend('extend', [request]))[0]!;
  }

  /** {@link PostgresStore.extend} for a batch, in one statement. */
  async extendMany(requests: readonly ExtendRequest[]): Promise<TransitionResult[]> {
    return requests.length === 0 ? [] : this.#extend('extendMany', requests);
  }

  /**
   * Marks the claim completed (with `result`, when given) and keeps it `windowMs` from now.
   * `lease-lost` when another claim has taken the ID since: nothing is written then.
   * @example
   * const outcome = await store.complete({ scope: 'emails', id, token: claim.token, result: '"sent"', windowMs });
   * if (outcome === 'lease-lost') metrics.leaseLost.inc();
   */
  async complete(request: CompleteRequest): Promise<TransitionResult> {
    return (await this.#complete('complete', [request]))[0]!;
  }

  /** {@link PostgresStore.complete} for a batch, in one statement. */
  async completeMany(requests: readonly CompleteRequest[]): Promise<TransitionResult[]> {
    return requests.length === 0 ? [] : this.#complete('completeMany', requests);
  }

  /** Gives the ID back (retryable failure): it reads as absent, and its token is kept for the next claim. */
  async release(request: OwnedRef): Promise<TransitionResult> {
    return (await this.#release('release', [request]))[0]!;
  }

  /** {@link PostgresStore.release} for a batch, in one statement. */
  async releaseMany(requests: readonly OwnedRef[]): Promise<TransitionResult[]> {
    return requests.length === 0 ? [] : this.#release('releaseMany', requests);
  }

  /** Records a terminal failure (`error` is a code, never a message) and keeps it `windowMs` from now. */
  async fail(request: FailRequest): Promise<TransitionResult> {
    const values = [
      checkScope(request.scope),
      checkId(request.id),
      checkToken(request.token),
      checkDuration(request.windowMs, 'windowMs'),
      checkText(request.error, 'error'),
    ];
    const result = await this.#query('fail', this.#statements.fail, values);
    return result.rowCount === 1 ? 'ok' : 'lease-lost';
  }

  /** Reads a record; absent, released, expired and expired-lease records read as `undefined` (database clock). */
  async get(scope: string, id: string): Promise<DedupRecord | undefined> {
    const result = await this.#query<RecordRow>('get', this.#statements.get, [checkScope(scope), checkId(id)]);
    const row = result.rows[0];
    return row === undefined ? undefined : decode('get', () => decodeRecordRow(row));
  }

  /**
   * Reads the mark and claims every request whose position lies outside it, in one statement. Every
   * request must have the mark's scope.
   */
  async claimManyMarked(
    mark: MarkRef,
    requests: readonly PositionedClaimRequest[],
    skipMarked: boolean,
  ): Promise<{ mark: MarkRange | undefined; claims: (ClaimResult | undefined)[] }> {
    const ref = checkMark(mark);
    for (const request of requests) sameScope(ref, request);
    return this.#claim('claimManyMarked', requests, claimColumns(requests, true), { ...ref, skip: skipMarked === true });
  }

  /** Completes the requests and, if all succeed, advances the mark over `advance`, in one statement. */
  async completeManyMarked(
    mark: MarkRef,
    requests: readonly CompleteRequest[],
    advance: MarkAdvance | undefined,
  ): Promise<{ results: TransitionResult[]; mark: MarkRange | undefined }> {
    const ref = checkMark(mark);
    for (const request of requests) sameScope(ref, request);
    const columns = completeColumns(requests);
    const from = advance === undefined ? 0 : checkPosition(advance.from);
    const to = advance === undefined ? 0 : checkPosition(advance.to);
    if (to < from) throw new RangeError('PostgresStore: a mark advance needs from <= to');
    const result = await this.#query<{ ord: number; mark_low: string | null; mark_high: string | null }>(
      'completeManyMarked',
      this.#statements.completeMarked,
      [columns.scopes, columns.ids, columns.tokens, columns.windows, columns.results, ref.scope, ref.name, advance !== undefined, from, to, requests.length],
    );
    const results = new Array<TransitionResult>(requests.length).fill('lease-lost');
    let range: MarkRange | undefined;
    for (const row of result.rows) {
      if (row.ord === 0) range = decode('completeManyMarked', () => decodeMark(row.mark_low, row.mark_high));
      else results[row.ord - 1] = 'ok';
    }
    return { results, mark: range };
  }

  /** Reads a mark (one statement). */
  async getMark(mark: MarkRef): Promise<MarkRange | undefined> {
    const ref = checkMark(mark);
    const result = await this.#query<{ low: string; high: string }>('getMark', this.#statements.getMark, [ref.scope, ref.name]);
    const row = result.rows[0];
    return row === undefined ? undefined : decode('getMark', () => decodeMark(row.low, row.high));
  }

  /** Removes a mark (one statement). */
  async deleteMark(mark: MarkRef): Promise<void> {
    const ref = checkMark(mark);
    await this.#query('deleteMark', this.#statements.deleteMark, [ref.scope, ref.name]);
  }

  /**
   * Deletes expired rows (window over), `batchSize` rows per statement, until none is left (or
   * `maxBatches` statements ran), and answers how many it deleted. Rows a claim holds locked are
   * skipped until the next run. Only reclaims space: an expired row already reads as absent.
   * @example
   * setInterval(() => void store.prune().catch(report), 60_000); // or the pruneIntervalMs option
   */
  async prune(options: PruneOptions = {}): Promise<number> {
    const batchSize = options.batchSize ?? this.#pruneBatchSize;
    const maxBatches = options.maxBatches ?? Number.POSITIVE_INFINITY;
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new RangeError('PostgresStore: prune batchSize must be a positive integer');
    if (!(maxBatches >= 1)) throw new RangeError('PostgresStore: prune maxBatches must be at least 1');
    let deleted = 0;
    for (let batch = 0; batch < maxBatches; batch++) {
      const result = await this.#query('prune', this.#statements.prune, [batchSize]);
      const count = result.rowCount ?? 0;
      deleted += count;
      if (count < batchSize) break;
    }
    return deleted;
  }

  /**
   * Opens a transaction on a connection of the pool (or through the `transaction` option's library),
   * runs `work(tx)` with `tx` that transaction (its writes are part of it), then completes the claim
   * with its fencing check as the transaction's last statement, and commits: the effect and the
   * completion commit together, or neither does. Called by the processor when its store is this one;
   * the handler gets `ctx.tx`.
   * - The fence fails (another owner took the ID): rolls back, answers `lease-lost`.
   * - `work` throws: rolls back and rejects with its error (the claim stays owned).
   * - The handler ended the transaction itself (COMMIT/ROLLBACK on `tx`), or went on after one of
   *   its statements failed: rejects with a {@link TransactionStateError}; nothing is completed.
   * - The database cannot be reached, or the commit fails: `StoreUnavailableError` (a failed COMMIT
   *   may or may not have committed; a release afterwards is fenced, so it is safe).
   *
   * Run every write of the effect on `tx`, never on another connection (that would commit on its
   * own); use `SET LOCAL`, not `SET`, for settings (the connection goes back to the pool).
   * @example
   * const outcome = await processor.process(message, async ({ tx, token }) => {
   *   await tx.query('INSERT INTO invoices (order_id, fence) VALUES ($1, $2)', [message.payload.orderId, token]);
   * });
   */
  async completeWithin<R>(
    request: TransactionalCompleteRequest,
    work: (tx: Tx) => Promise<TransactionalWork<R>>,
  ): Promise<{ transition: TransitionResult; value: R }> {
    const owned = ownedColumns([request]);
    const windowMs = checkDuration(request.windowMs, 'windowMs');
    // Through the transaction option, the transaction is marked first and the completion checks the
    // mark; on a pg client of ours, the client tells the transaction's state (see #transaction).
    const mark = this.#runner ? String(++transactionMarks) : null;
    // `[scope, id, token, windowMs, result]`; the guarded statement (completeInTransaction) takes the mark as $6.
    const fields = (done: TransactionalWork<R>): unknown[] => [owned.scopes[0], owned.ids[0], owned.tokens[0], windowMs, checkText(done.result, 'result')];
    const operation = 'completeWithin';
    let transition: TransitionResult = 'lease-lost';
    const settle = (row: CompletionRow | undefined): boolean => {
      if (row?.open !== true) {
        throw new TransactionStateError(
          'TRANSACTION_ENDED',
          `the transaction of ${operation} was no longer open when the completion ran: the handler ended it (COMMIT or ROLLBACK on ctx.tx), or the store's transaction option opened none; the handler's writes may have committed without the completion. Never end ctx.tx: throw to roll back`,
        );
      }
      transition = Number(row.completed) === 1 ? 'ok' : 'lease-lost';
      return transition === 'ok';
    };
    const runner = this.#runner;
    if (runner) {
      const ran = await this.#runInLibrary(operation, runner, work as (tx: unknown) => Promise<TransactionalWork<R>>, mark, async (tx, done) => {
        const rows = await this.#queryInLibrary(operation, runner, tx, this.#statements.completeInTransaction, [...fields(done), mark]);
        return settle(rows[0] as CompletionRow | undefined);
      });
      return { transition, value: ran.value.value };
    }
    const ran = await this.#transaction(operation, work as unknown as (tx: PoolClient) => Promise<TransactionalWork<R>>, { values: fields, settle });
    return { transition: ran.committed ? 'ok' : 'lease-lost', value: ran.value.value };
  }

  /**
   * Runs `work(tx)` in a transaction with no completion (for handlers the processor runs without a
   * claim: fail-open, shadow mode, `onConflict: 'process'`). Commits when `work` resolves; rolls back
   * and rethrows when it throws.
   * @example
   * await store.withTransaction(async (tx) => tx.query('UPDATE accounts SET balance = balance - 1 WHERE id = $1', [id]));
   */
  async withTransaction<R>(work: (tx: Tx) => Promise<R>): Promise<R> {
    const runner = this.#runner;
    if (runner) return (await this.#runInLibrary('withTransaction', runner, work as (tx: unknown) => Promise<R>, null, undefined)).value;
    return (await this.#transaction('withTransaction', work as unknown as (tx: PoolClient) => Promise<R>, null)).value;
  }

  /** {@link AdminStore.inspect}: the row as kept (tombstones, expired leases); an expired row is absent. See `./admin.ts`. */
  inspect(scope: string, id: string): Promise<AdminRecord | undefined> {
    return this.#adminOps().inspect(scope, id);
  }

  /** {@link AdminStore.list}: keyset pages over the primary key (scope, id), in ID byte order; every entry has its `id`. */
  list(scope: string, options?: AdminListOptions): Promise<AdminPage> {
    return this.#adminOps().list(scope, options);
  }

  /** {@link AdminStore.purge}: one `DELETE` by primary key. */
  purge(scope: string, id: string): Promise<boolean> {
    return this.#adminOps().purge(scope, id);
  }

  /** {@link AdminStore.purgeScope}: `DELETE`s of `batchSize` rows each, in key order. */
  purgeScope(scope: string, options?: AdminPurgeScopeOptions): Promise<AdminPurgeResult> {
    return this.#adminOps().purgeScope(scope, options);
  }

  /** {@link AdminStore.countByState}: one pass over the scope, `batchSize` rows per statement. */
  countByState(scope: string, options?: AdminCountOptions): Promise<AdminCounts> {
    return this.#adminOps().countByState(scope, options);
  }

  #adminOps(): PostgresAdmin {
    return (this.#admin ??= new PostgresAdmin(
      async <R extends QueryResultRow>(operation: string, statement: Statement, values: unknown[]) => (await this.#query<R>(operation, statement, values)).rows,
      qualify(this.#names),
    ));
  }

  /**
   * `false` after a call failed because the database could not be reached (refused or dropped
   * connection, pool timeout, server shutting down), until a call succeeds again: a batch then stops
   * before running more handlers whose completions could not be recorded.
   */
  isAvailable(): boolean {
    return this.#reachable;
  }

  /** Stops the prune timer and waits for a running prune. The pool is yours to end. */
  async close(): Promise<void> {
    if (this.#pruneTimer !== undefined) clearInterval(this.#pruneTimer);
    this.#pruneTimer = undefined;
    await this.#pruning;
  }

  #prunePeriodically(): void {
    if (this.#pruning !== undefined) return; // the previous run is still going
    this.#pruning = this.prune()
      .catch((error: unknown) => {
        try {
          this.#onPruneError?.(error as Error);
        } catch {
          // a reporting callback must not take the timer down
        }
      })
      .finally(() => (this.#pruning = undefined));
  }

  /**
   * Claims `requests` (their checked `columns`), with a mark when given. Requests the statement could
   * not resolve (a race with a concurrent first claim of the same ID) are claimed again, alone.
   */
  async #claim(
    operation: string,
    requests: readonly ClaimRequest[],
    columns: ClaimColumns,
    mark: (MarkRef & { skip: boolean }) | undefined,
  ): Promise<{ mark: MarkRange | undefined; claims: (ClaimResult | undefined)[] }> {
    const claims = new Array<ClaimResult | undefined>(requests.length);
    const claimedAt = new Map<number, number>();
    const repeats: [index: number, first: number][] = [];
    let range: MarkRange | undefined;
    let pending: number[] = [];

    const read = (rows: readonly ClaimRow[], indices: readonly number[] | undefined) => {
      for (const row of rows) {
        if (row.ord === 0) {
          range = decodeMark(row.mark_low, row.mark_high);
          continue;
        }
        const index = indices === undefined ? row.ord - 1 : indices[row.ord - 1]!;
        const answer = decodeClaimRow(row);
        if (answer === 'marked') claims[index] = undefined;
        else if (answer === 'unresolved') pending.push(index);
        else if ('repeatOf' in answer) repeats.push([index, indices === undefined ? answer.repeatOf : indices[answer.repeatOf]!]);
        else {
          claims[index] = answer;
          if (answer.status === 'acquired') claimedAt.set(index, row.claimed_at!);
        }
      }
    };

    // One unmarked request takes the single-row statement: same answer, a fraction of the server's work.
    const one = (i: number) => [columns.scopes[i], columns.ids[i], columns.leases[i], columns.windows[i], columns.fingerprints[i]];
    let first: QueryResult<ClaimRow>;
    if (mark === undefined && requests.length === 1) {
      first = await this.#query<ClaimRow>(operation, this.#statements.claimOne, one(0));
    } else {
      const statement = mark === undefined ? this.#statements.claim : this.#statements.claimMarked;
      const values: unknown[] = [columns.scopes, columns.ids, columns.leases, columns.windows, columns.fingerprints];
      if (mark !== undefined) values.push(mark.skip, mark.scope, mark.name, columns.positions);
      first = await this.#query<ClaimRow>(operation, statement, values);
    }
    decode(operation, () => read(first.rows, undefined));

    try {
      for (let attempt = 2; pending.length > 0; attempt++) {
        if (attempt > MAX_CLAIM_STATEMENTS) {
          throw new StoreUnavailableError(`PostgreSQL store unavailable during ${operation}: claims kept racing concurrent claims of the same IDs`);
        }
        const indices = pending;
        pending = [];
        const pick = <T>(column: readonly T[]) => indices.map((i) => column[i]!);
        const again =
          indices.length === 1
            ? await this.#query<ClaimRow>(operation, this.#statements.claimOne, one(indices[0]!))
            : await this.#query<ClaimRow>(operation, this.#statements.claim, [
                pick(columns.scopes),
                pick(columns.ids),
                pick(columns.leases),
                pick(columns.windows),
                pick(columns.fingerprints),
              ]);
        decode(operation, () => read(again.rows, indices));
      }
    } catch (error) {
      // The caller hears of no claim: give back what the earlier statements acquired, best effort
      // (else those leases expire unowned, and the next claims are takeovers).
      const acquired: OwnedRef[] = [];
      claims.forEach((claim, i) => {
        if (claim?.status === 'acquired') acquired.push({ scope: columns.scopes[i]!, id: columns.ids[i]!, token: claim.token });
      });
      if (acquired.length > 0) await this.releaseMany(acquired).catch(() => undefined);
      throw error;
    }

    for (const [index, first] of repeats) {
      claims[index] = repeatAnswer(claims[first]!, claimedAt.get(first) ?? 0, requests[first]!.fingerprint);
    }
    return { mark: range, claims };
  }

  async #extend(operation: string, requests: readonly ExtendRequest[]): Promise<TransitionResult[]> {
    const columns = extendColumns(requests);
    const result = await this.#query<{ ord: number }>(operation, this.#statements.extend, [columns.scopes, columns.ids, columns.tokens, columns.leases]);
    return transitions(requests.length, result.rows);
  }

  async #complete(operation: string, requests: readonly CompleteRequest[]): Promise<TransitionResult[]> {
    const columns = completeColumns(requests);
    const result =
      requests.length === 1
        ? await this.#query<{ ord: number }>(operation, this.#statements.completeOne, [columns.scopes[0], columns.ids[0], columns.tokens[0], columns.windows[0], columns.results[0]])
        : await this.#query<{ ord: number }>(operation, this.#statements.complete, [columns.scopes, columns.ids, columns.tokens, columns.windows, columns.results]);
    return transitions(requests.length, result.rows);
  }

  async #release(operation: string, requests: readonly OwnedRef[]): Promise<TransitionResult[]> {
    const columns = ownedColumns(requests);
    const result = await this.#query<{ ord: number }>(operation, this.#statements.release, [columns.scopes, columns.ids, columns.tokens]);
    return transitions(requests.length, result.rows);
  }

  /**
   * A transaction opened by the user's library (`transaction` option): `run(work)` with, inside it,
   * `work(tx)` then `finish(tx, value)` (the completion). Whatever the library does on the way out,
   * the caller hears the handler's own error, the completion's error, `committed: false` after a
   * failed fence (rolled back), or a `StoreUnavailableError` when the library could not open or
   * commit the transaction (a failed commit may or may not have committed).
   */
  async #runInLibrary<T>(
    operation: string,
    runner: TransactionRunner<unknown>,
    work: (tx: unknown) => Promise<T>,
    mark: string | null,
    finish: ((tx: unknown, value: T) => Promise<boolean>) | undefined,
  ): Promise<{ value: T; committed: boolean }> {
    await this.#ensureSchema(operation);
    let stage: 'opening' | 'running' | 'committing' = 'opening';
    let failure: { error: unknown } | undefined; // the handler's or the completion's error
    let rolledBack: { value: T } | undefined;
    let value: T;
    try {
      value = await runner.run(async (tx) => {
        // A library may run the callback again (e.g. after a serialization failure): start over.
        stage = 'running';
        failure = undefined;
        rolledBack = undefined;
        let result: T;
        try {
          if (mark !== null) await this.#queryInLibrary(operation, runner, tx, this.#statements.markTransaction, [mark]);
          result = await work(tx);
          if (finish !== undefined && !(await finish(tx, result))) {
            rolledBack = { value: result };
            throw ROLL_BACK;
          }
        } catch (error) {
          if (error !== ROLL_BACK) failure = { error };
          throw error;
        }
        stage = 'committing';
        return result;
      });
    } catch (error) {
      if (rolledBack) return { value: rolledBack.value, committed: false };
      if (failure) throw failure.error;
      if (isConnectionError(error)) this.#reachable = false;
      throw storeUnavailable(`${operation} (${stage === 'opening' ? 'opening' : 'committing'} the transaction through the transaction option)`, error, this.#tables);
    }
    if (stage === 'opening') {
      throw new InvalidOptionsError(`PostgresStore option "transaction": run() resolved without calling work(tx); it must run work inside a transaction`);
    }
    this.#reachable = true;
    return { value, committed: true };
  }

  /** Runs one statement on the user's transaction (`transaction` option's `query`). */
  async #queryInLibrary(operation: string, runner: TransactionRunner<unknown>, tx: unknown, statement: Statement, values: unknown[]): Promise<readonly unknown[]> {
    let result: { readonly rows: readonly unknown[] };
    try {
      result = await runner.query(tx, statement.text, values);
    } catch (error) {
      if ((error as { code?: unknown } | null)?.code === '25P02') {
        throw new TransactionStateError(
          'TRANSACTION_ABORTED',
          `a statement of the handler failed inside the transaction of ${operation} and the handler went on; everything was rolled back`,
        );
      }
      if (isConnectionError(error)) this.#reachable = false;
      throw storeUnavailable(operation, error, this.#tables);
    }
    if (!Array.isArray(result?.rows)) {
      throw storeUnavailable(operation, new TypeError('the transaction option\'s query() must answer { rows: [...] }'), this.#tables);
    }
    return result.rows;
  }

  /** Runs one statement (on `client`, or on the pool); any failure is store-unavailable. */
  async #query<R extends QueryResultRow = QueryResultRow>(
    operation: string,
    statement: Statement,
    values: unknown[],
    client?: PoolClient,
  ): Promise<QueryResult<R>> {
    await this.#ensureSchema(operation);
    const config = this.#config(statement, values);
    try {
      const result = client === undefined ? await this.#pool.query<R>(config) : await client.query<R>(config);
      this.#reachable = true;
      return result;
    } catch (error) {
      if (isConnectionError(error)) this.#reachable = false;
      throw storeUnavailable(operation, error, this.#tables);
    }
  }

  /** With `createSchema`, migrates once before the first statement (again after a failed attempt). */
  async #ensureSchema(operation: string): Promise<void> {
    if (!this.#createSchema) return;
    this.#migrated ??= this.migrate().catch((error: unknown) => {
      this.#migrated = undefined;
      throw error;
    });
    try {
      await this.#migrated;
    } catch (error) {
      const cause = error instanceof StoreUnavailableError ? error.cause : error;
      throw storeUnavailable(`${operation} (creating the tables)`, cause, this.#tables);
    }
  }

  /** A statement as pg takes it: named (prepared once per connection) unless `preparedStatements` is off. */
  #config(statement: Statement, values: unknown[]): { name?: string; text: string; values: unknown[] } {
    return this.#prepared && statement.replan !== true ? { name: statement.name, text: statement.text, values } : { text: statement.text, values };
  }

  /**
   * BEGIN on a connection of its own, `work(client)`, then (with `completion`) the fenced completion
   * of the claim, and COMMIT when it completed, ROLLBACK when the fence failed. A connection whose
   * state is in doubt is closed rather than handed back to the pool.
   *
   * On a pipelined client (`new pg.Pool({ pipeline: true })`) BEGIN goes out with the handler's first
   * statement, and the completion with the COMMIT: 3 round trips for a handler's one write instead of
   * 5 (the claim, BEGIN+write, completion+COMMIT). The completion is then sent before its answer is
   * known, so it is the variant that fails the transaction when the fence fails, and the COMMIT rolls
   * back (see `completeBeforeCommit` in statements.ts).
   */
  async #transaction<T>(
    operation: string,
    work: (client: PoolClient) => Promise<T>,
    completion: TransactionCompletion<T> | null,
  ): Promise<{ value: T; committed: boolean }> {
    await this.#ensureSchema(operation);
    let client: PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (error) {
      if (isConnectionError(error)) this.#reachable = false;
      throw storeUnavailable(operation, error, this.#tables);
    }
    // A checked-out client has no 'error' listener of the pool's: without one, a connection that
    // drops while the handler runs would be an uncaught exception. The failure reaches us through
    // the next statement anyway.
    const onError = () => {
      this.#reachable = false;
    };
    client.on('error', onError);
    const pipelined = (client as { pipeline?: unknown }).pipeline === true;
    let healthy = false;
    const statement = async (text: string) => {
      try {
        return await client.query(text);
      } catch (error) {
        if (isConnectionError(error)) this.#reachable = false;
        throw storeUnavailable(operation, error, this.#tables);
      }
    };
    const rollback = () => client.query('ROLLBACK').then(() => true, () => false);
    const aborted = () =>
      new TransactionStateError(
        'TRANSACTION_ABORTED',
        `a statement of the handler failed inside the transaction of ${operation} and the handler went on; everything was rolled back`,
      );
    try {
      // Pipelined, the handler's first statement follows BEGIN on the wire without waiting for it.
      const begun = statement('BEGIN');
      if (pipelined) begun.catch(() => {});
      else await begun;
      healthy = true;
      let value: T;
      try {
        value = await work(client);
      } catch (error) {
        if (pipelined) await begun.catch(() => (healthy = false));
        if (healthy) healthy = await rollback();
        throw error;
      }
      if (pipelined) {
        healthy = false;
        await begun;
        healthy = true;
      }
      const state = await transactionState(client);
      if (state === 'ended') {
        healthy = false; // its session may hold anything the handler left behind
        throw new TransactionStateError(
          'TRANSACTION_ENDED',
          `the handler ended the transaction of ${operation} itself (COMMIT or ROLLBACK on ctx.tx); its writes may have committed without the completion. Never end ctx.tx: throw to roll back`,
        );
      }
      if (state === 'aborted') {
        healthy = await rollback();
        throw aborted();
      }
      let values: unknown[] = [];
      if (completion !== null) {
        try {
          values = completion.values(value); // checks the recorded result
        } catch (error) {
          healthy = await rollback();
          throw error;
        }
      }
      if (completion !== null && pipelined) {
        healthy = false; // until the COMMIT answers
        const completed = client.query<{ completed: number } & QueryResultRow>(this.#config(this.#statements.completeBeforeCommit, values)).then(
          () => undefined,
          (error: unknown) => error,
        );
        const committed = statement('COMMIT').then((result) => result.command);
        const [failure, command] = await Promise.all([completed, committed]);
        healthy = true;
        this.#reachable = true;
        if (failure === undefined && command === 'COMMIT') return { value, committed: true };
        if ((failure as { code?: unknown } | undefined)?.code === FENCE_FAILED) return { value, committed: false };
        // The client may learn of a swallowed failure only at the next statement (the server's
        // ReadyForQuery can arrive after the failed query settled): the completion then finds the
        // transaction aborted, and the COMMIT rolls back.
        if (failure === undefined || inFailedTransaction(failure)) throw aborted();
        if (isConnectionError(failure)) this.#reachable = false;
        throw storeUnavailable(operation, failure, this.#tables);
      }
      if (completion !== null) {
        let commit: boolean;
        try {
          const result = await this.#query<CompletionRow & QueryResultRow>(operation, this.#statements.completeInTransaction, [...values, null], client);
          commit = completion.settle(result.rows[0]);
        } catch (error) {
          healthy = await rollback();
          if (inFailedTransaction(error)) throw aborted();
          throw error;
        }
        if (!commit) {
          healthy = await rollback();
          return { value, committed: false };
        }
      }
      healthy = false; // a failed COMMIT leaves the connection in doubt
      await statement('COMMIT');
      healthy = true;
      return { value, committed: true };
    } finally {
      client.off('error', onError);
      client.release(!healthy);
    }
  }
}

/** The completion that {@link PostgresStore.completeWithin} runs at the end of its transaction. */
interface TransactionCompletion<T> {
  /** `[scope, id, token, windowMs, result]` of the completion, from the work's value. */
  values(value: T): unknown[];
  /** Reads the answer of `completeInTransaction`: true to commit. */
  settle(row: CompletionRow | undefined): boolean;
}

/**
 * Whether the transaction is still open (`'open'`), in the failed state (`'aborted'`), or over
 * (`'ended'`). Recent pg clients track it from the server's ReadyForQuery messages
 * (`getTransactionStatus()`); older ones (and pg-native) are asked with a SAVEPOINT, which only an
 * open transaction accepts.
 */
async function transactionState(client: PoolClient): Promise<'open' | 'aborted' | 'ended'> {
  const status = (client as { getTransactionStatus?: () => string | null }).getTransactionStatus?.();
  if (status === 'T') return 'open';
  if (status === 'E') return 'aborted';
  if (status === 'I') return 'ended';
  try {
    await client.query('SAVEPOINT onceonly_check');
    return 'open';
  } catch (error) {
    return (error as { code?: unknown }).code === '25P02' ? 'aborted' : 'ended';
  }
}

/** A failure of a statement run in a transaction already in the failed state (SQLSTATE 25P02), itself or as the cause. */
function inFailedTransaction(error: unknown): boolean {
  const code = (e: unknown) => (e as { code?: unknown } | null)?.code;
  return code(error) === '25P02' || code((error as { cause?: unknown } | null)?.cause) === '25P02';
}

/** `ok` for each returned request number (1-based `ord`), `lease-lost` for the rest. */
function transitions(count: number, rows: readonly { ord: number }[]): TransitionResult[] {
  const results = new Array<TransitionResult>(count).fill('lease-lost');
  for (const row of rows) results[row.ord - 1] = 'ok';
  return results;
}

/** Decodes a reply; a reply that cannot be decoded is store-unavailable, as in the Redis store. */
function decode<T>(operation: string, run: () => T): T {
  try {
    return run();
  } catch (error) {
    throw storeUnavailable(operation, error);
  }
}

function checkMark(mark: MarkRef): MarkRef {
  if (typeof mark !== 'object' || mark === null) throw new TypeError('PostgresStore: a mark must be { scope, name }');
  return { scope: checkScope(mark.scope), name: checkMarkName(mark.name) };
}

/** Every request of a marked batch belongs to the mark's scope (as in the Redis store). */
function sameScope(mark: MarkRef, request: { scope: string }): void {
  if (request.scope !== mark.scope) throw new TypeError("PostgresStore: every request of a marked batch must have the mark's scope");
}
