import { OnceOnlyError, StoreUnavailableError } from '@onceonly/core';

/** What an error from pg looks like: a server error carries a SQLSTATE `code` and a `severity`. */
interface ServerError {
  readonly code: string;
  readonly severity: string;
}

function isServerError(error: unknown): error is Error & ServerError {
  return (
    error instanceof Error &&
    typeof (error as Partial<ServerError>).code === 'string' &&
    typeof (error as Partial<ServerError>).severity === 'string'
  );
}

// Conditions worth naming in a message (https://www.postgresql.org/docs/current/errcodes-appendix.html).
const CONDITIONS: Readonly<Record<string, string>> = {
  '08000': 'connection_exception',
  '08003': 'connection_does_not_exist',
  '08006': 'connection_failure',
  '25P02': 'in_failed_sql_transaction',
  '28000': 'invalid_authorization_specification',
  '28P01': 'invalid_password',
  '3D000': 'invalid_catalog_name',
  '3F000': 'invalid_schema_name',
  '40001': 'serialization_failure',
  '40P01': 'deadlock_detected',
  '42501': 'insufficient_privilege',
  '42P01': 'undefined_table',
  '53100': 'disk_full',
  '53200': 'out_of_memory',
  '53300': 'too_many_connections',
  '55P03': 'lock_not_available',
  '57014': 'query_canceled',
  '57P01': 'admin_shutdown',
  '57P02': 'crash_shutdown',
  '57P03': 'cannot_connect_now',
  '25006': 'read_only_sql_transaction',
};

/**
 * Wraps whatever pg rejected with (refused or dropped connection, pool timeout, a server error such
 * as a statement timeout, a deadlock or a missing table) into a retriable `StoreUnavailableError`,
 * keeping the original as `cause`.
 *
 * The message never carries payload data: of a server error only its SQLSTATE and condition name are
 * kept, because PostgreSQL's messages may quote values (`invalid input syntax for type …: "…"`).
 * Connection errors from the client name no values, so their message is kept.
 */
export function storeUnavailable(operation: string, error: unknown, tables?: string): StoreUnavailableError {
  return new StoreUnavailableError(`PostgreSQL store unavailable during ${operation}: ${describe(error, tables)}`, { cause: error });
}

function describe(error: unknown, tables: string | undefined): string {
  if (!(error instanceof Error)) return 'non-error value thrown';
  if (isServerError(error)) {
    const condition = CONDITIONS[error.code];
    const named = `PostgreSQL error ${error.code}${condition ? ` (${condition})` : ''}`;
    if (error.code === '42P01') {
      return `${named}: a table of the store (${tables ?? 'see the options'}) does not exist; run store.migrate(), apply the package's sql/schema.sql, or pass createSchema: true`;
    }
    return named;
  }
  // Bounded: a message is for people, and a long one is never useful here.
  const message = error.message.length > 200 ? `${error.message.slice(0, 200)}…` : error.message;
  return `${error.name}: ${message}`;
}

/**
 * True when `error` says the database cannot be reached (as opposed to a statement that failed on a
 * live connection): no SQLSTATE at all (socket errors, pool timeouts, a dropped connection), class 08
 * (connection exception), or the server shutting down, starting or full.
 */
export function isConnectionError(error: unknown): boolean {
  if (!isServerError(error)) return true;
  return error.code.startsWith('08') || ['57P01', '57P02', '57P03', '53300'].includes(error.code);
}

/** Codes of {@link TransactionStateError}. */
export type TransactionStateCode = 'TRANSACTION_ENDED' | 'TRANSACTION_ABORTED';

/**
 * The handler broke the transaction it was given (`ctx.tx` inside `completeWithin`/`withTransaction`):
 * - `TRANSACTION_ENDED` (`retriable: false`): it ran COMMIT or ROLLBACK itself. Its writes may have
 *   committed without the completion, so running it again could apply them twice: not retriable.
 *   Never end the transaction in the handler; throw to roll back.
 * - `TRANSACTION_ABORTED` (`retriable: true`): a statement of the handler failed and the handler went
 *   on (the transaction was in the failed state). Everything was rolled back; a retry may succeed.
 */
export class TransactionStateError extends OnceOnlyError {
  declare readonly code: TransactionStateCode;

  constructor(code: TransactionStateCode, message: string) {
    // Ended: the handler committed or rolled back itself, so a retry could apply a committed effect
    // again (terminal). Aborted: a statement failed and the handler went on; a retry may succeed.
    super(code, message, code === 'TRANSACTION_ABORTED');
  }
}
