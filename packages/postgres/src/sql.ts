/**
 * SQL names and the expressions every statement shares.
 *
 * Schema and table names come from options: they are validated ({@link identifierProblem}) and then
 * always quoted ({@link quoteIdentifier}), so a name is never read as SQL and keeps its case.
 */

/** Letters, digits and `_`, not starting with a digit: a name that needs no care in any tool. */
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Longest schema name. PostgreSQL truncates identifiers beyond 63 bytes. */
export const MAX_SCHEMA_NAME_LENGTH = 63;

/** Longest table name: leaves room for the index suffix (`_expires_at_idx`) within 63 bytes. */
export const MAX_TABLE_NAME_LENGTH = 48;

/** Why `name` cannot be a schema or table name of the store, or `undefined` when it can. */
export function identifierProblem(name: string, maxLength: number): string | undefined {
  if (name.length === 0) return 'must not be empty';
  if (name.length > maxLength) return `must be at most ${maxLength} characters`;
  if (!IDENTIFIER.test(name)) return 'must be letters, digits and "_", not starting with a digit';
  return undefined;
}

/**
 * Quotes an SQL identifier: `"` around it, each `"` inside doubled. Total for any string without NUL
 * (the store's names are validated before they get here; this is the second fence).
 * @example
 * quoteIdentifier('onceonly_records'); // '"onceonly_records"'
 * quoteIdentifier('a"b');              // '"a""b"'
 */
export function quoteIdentifier(name: string): string {
  if (name.includes('\u0000')) throw new TypeError('an SQL identifier cannot contain U+0000');
  return `"${name.replaceAll('"', '""')}"`;
}

/** Where the store keeps its records and marks. */
export interface TableNames {
  readonly schema: string;
  readonly table: string;
  readonly marksTable: string;
}

/** The quoted, schema-qualified names the statements use. */
export interface QualifiedNames {
  /** `"schema"."table"`. */
  readonly records: string;
  /** `"schema"."marks table"`. */
  readonly marks: string;
  /** The expiry index, unqualified (an index lives in its table's schema). */
  readonly expiresIndex: string;
  /** `schema.table`, unquoted: for messages and the migration lock. */
  readonly display: string;
  readonly marksDisplay: string;
}

export function qualify(names: TableNames): QualifiedNames {
  const schema = quoteIdentifier(names.schema);
  return {
    records: `${schema}.${quoteIdentifier(names.table)}`,
    marks: `${schema}.${quoteIdentifier(names.marksTable)}`,
    expiresIndex: quoteIdentifier(`${names.table}_expires_at_idx`),
    display: `${names.schema}.${names.table}`,
    marksDisplay: `${names.schema}.${names.marksTable}`,
  };
}

/**
 * The store's clock: the database's, read once per statement. `statement_timestamp()` is the same for
 * every row a statement touches (as one `TIME` per Lua script in Redis), and unlike `now()` it moves
 * on between the statements of one transaction (a completion after a long handler inside
 * `completeWithin` is stamped when it runs). Truncated to milliseconds: every stored time is a whole
 * number of milliseconds, as the store contract reports them.
 */
export const NOW = `date_trunc('milliseconds', statement_timestamp())`;

/**
 * The first fencing token of an ID with no record: the clock in microseconds. Per-ID increments alone
 * would restart once a record is gone, and a worker stalled past the window could then match a new
 * owner's token.
 */
export const SEED = `(extract(epoch FROM statement_timestamp()) * 1000000)::bigint`;

/** `expression` (a timestamptz) as milliseconds since the epoch, a float8 that pg hands over as a number. */
export const ms = (expression: string): string => `(extract(epoch FROM ${expression}) * 1000)::float8`;

/** `column` (bigint milliseconds) as an interval. */
export const interval = (column: string): string => `(${column} * interval '1 millisecond')`;

/**
 * True when a claim may take the record `r` (its values at `now`): gone with its window, released, or
 * in progress with a lease that ran out.
 */
export const open = (r: string, now: string): string =>
  `(${r}.expires_at <= ${now} OR ${r}.state = 0 OR (${r}.state = 1 AND ${r}.lease_until <= ${now}))`;
