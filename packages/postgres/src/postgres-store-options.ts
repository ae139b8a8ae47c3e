import { InvalidOptionsError } from '@onceonly/core';
import type { Pool, PoolClient } from 'pg';
import { z } from 'zod';
import { identifierProblem, MAX_SCHEMA_NAME_LENGTH, MAX_TABLE_NAME_LENGTH } from './sql.js';

// A Node timer's limit.
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A `pg.Pool` (or a compatible pool): `query`, `connect`, and the pool's counters. A single
 * `pg.Client` does not fit: a transaction (`completeWithin`) needs a connection of its own while
 * other calls go on.
 */
const isPool = (value: unknown): boolean =>
  typeof value === 'object' &&
  value !== null &&
  typeof (value as { query?: unknown }).query === 'function' &&
  typeof (value as { connect?: unknown }).connect === 'function' &&
  typeof (value as { totalCount?: unknown }).totalCount === 'number';

/**
 * How the store opens the handler's transaction through your query builder or ORM (option
 * `transaction` of {@link PostgresStore}): `ctx.tx` is then that library's transaction object, and the
 * completion runs inside it as its last statement.
 *
 * @example Kysely (`ctx.tx` is a `Transaction<DB>`)
 * new PostgresStore<Transaction<DB>>({
 *   pool,
 *   transaction: {
 *     run: (work) => db.transaction().execute(work),
 *     query: (trx, sql, parameters) => trx.executeQuery(CompiledQuery.raw(sql, parameters)),
 *   },
 * });
 */
export interface TransactionRunner<Tx> {
  /**
   * Runs `work` in a new transaction of your library on the store's database: commits when `work`
   * resolves, rolls back (and rejects) when it rejects. E.g. Kysely's `db.transaction().execute(work)`,
   * Drizzle's `db.transaction(work)`, or your own BEGIN/COMMIT around a pg client you hold.
   */
  readonly run: <T>(work: (tx: Tx) => Promise<T>) => Promise<T>;
  /**
   * Runs one SQL statement with `$1, $2, …` parameters on `tx`, answering its rows: the store's
   * completion, inside the transaction. E.g. Kysely:
   * `(trx, sql, parameters) => trx.executeQuery(CompiledQuery.raw(sql, parameters))`.
   */
  readonly query: (tx: Tx, sql: string, parameters: unknown[]) => Promise<{ readonly rows: readonly unknown[] }>;
}

const isFunction = (value: unknown): boolean => typeof value === 'function';

const identifier = (maxLength: number) =>
  z.string().superRefine((name, context) => {
    const problem = identifierProblem(name, maxLength);
    if (problem !== undefined) context.addIssue({ code: 'custom', message: problem });
  });

export const postgresStoreOptionsSchema = z
  .strictObject({
    /**
     * A `pg.Pool` you created (and own): the store never ends it. Give it an `'error'` listener (pg
     * emits errors of idle connections there). For fail-fast while the database is down, set
     * `connectionTimeoutMillis`; for a bound on hung statements, `statement_timeout` (server side) or
     * `query_timeout`. See {@link PostgresStore}.
     */
    pool: z.custom<Pool>(isPool, 'must be a pg Pool (a single Client cannot: transactions need connections of their own)'),
    /**
     * Schema of the tables. It must exist; `migrate()` does not create schemas.
     * @defaultValue 'public'
     */
    schema: identifier(MAX_SCHEMA_NAME_LENGTH).default('public'),
    /**
     * Table of the records: 1–48 letters, digits or `_`, not starting with a digit (always quoted, so
     * case is kept).
     * @defaultValue 'onceonly_records'
     */
    table: identifier(MAX_TABLE_NAME_LENGTH).default('onceonly_records'),
    /**
     * Table of the offset high-water marks (Kafka). Same rules as `table`.
     * @defaultValue 'onceonly_marks'
     */
    marksTable: identifier(MAX_TABLE_NAME_LENGTH).default('onceonly_marks'),
    /**
     * Create the tables on first use (as `migrate()` does) when they do not exist. Off by default:
     * schema changes belong in your migrations (`sql/schema.sql`, or `schemaSql()`), and the
     * application's database user often may not create tables. Without the tables, every call fails
     * with a `StoreUnavailableError` that says how to create them.
     * @defaultValue false
     */
    createSchema: z.boolean().default(false),
    /**
     * Prepare each statement once per connection (named prepared statements). Turn off behind a
     * connection pooler in transaction mode that cannot keep them (PgBouncer before 1.21, or without
     * `max_prepared_statements`).
     * @defaultValue true
     */
    preparedStatements: z.boolean().default(true),
    /**
     * When set, `prune()` runs every `pruneIntervalMs` (an unref'd timer, stopped by `close()`).
     * Correctness never depends on it: expired rows read as absent whether deleted or not.
     * @defaultValue none (call `prune()` yourself, e.g. from a cron job)
     */
    pruneIntervalMs: z.number().int().min(1_000, 'must be at least 1000 ms').max(MAX_TIMER_MS, `must be at most ${MAX_TIMER_MS} ms (a Node timer's limit)`).optional(),
    /**
     * Rows deleted per statement by `prune()`: bounds each statement's locks and WAL.
     * @defaultValue 1000
     */
    pruneBatchSize: z.number().int().min(1).max(100_000).default(1_000),
    /** Called with the `StoreUnavailableError` of a failed periodic prune (the next run tries again). */
    onPruneError: z.custom<(error: Error) => void>((value) => typeof value === 'function', 'must be a function').optional(),
    /**
     * Open the handler's transaction through your query builder or ORM ({@link TransactionRunner}):
     * `ctx.tx` is then its transaction object. Claims, heartbeats and the other calls still use `pool`,
     * which must reach the same database.
     * @defaultValue none: `ctx.tx` is a `pg` client of `pool` inside `BEGIN`
     */
    transaction: z
      .strictObject({
        run: z.custom<TransactionRunner<unknown>['run']>(isFunction, 'must be a function: (work) => your library runs work(tx) in a transaction'),
        query: z.custom<TransactionRunner<unknown>['query']>(isFunction, 'must be a function: (tx, sql, parameters) => the rows of sql run on tx'),
      })
      .optional(),
  })
  .superRefine((options, context) => {
    if (options.table === options.marksTable) {
      context.addIssue({ code: 'custom', path: ['marksTable'], message: 'must differ from table' });
    }
  });

/**
 * Options of {@link PostgresStore}. `Tx` is what handlers get as `ctx.tx`: a `pg` client by default,
 * your library's transaction with the `transaction` option.
 */
export type PostgresStoreOptions<Tx = PoolClient> = Omit<z.input<typeof postgresStoreOptionsSchema>, 'transaction'> & {
  /**
   * Open the handler's transaction through your query builder or ORM ({@link TransactionRunner}):
   * `ctx.tx` is then its transaction object. Claims, heartbeats and the other calls still use `pool`,
   * which must reach the same database.
   * @defaultValue none: `ctx.tx` is a `pg` client of `pool` inside `BEGIN`
   */
  transaction?: TransactionRunner<Tx>;
};
export type ResolvedPostgresStoreOptions = z.output<typeof postgresStoreOptionsSchema>;

/** Validates the options, failing with an `InvalidOptionsError` that names the option. */
export function parsePostgresStoreOptions(options: unknown): ResolvedPostgresStoreOptions {
  const parsed = postgresStoreOptionsSchema.safeParse(options);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const name =
    issue.code === 'unrecognized_keys'
      ? issue.keys.map((key) => [...issue.path.map(String), key].join('.')).join('", "')
      : issue.path.map(String).join('.') || 'options';
  const message = issue.code === 'unrecognized_keys' ? 'is not a PostgresStore option' : issue.message;
  throw new InvalidOptionsError(`PostgresStore option "${name}" ${message}`, { cause: parsed.error });
}
