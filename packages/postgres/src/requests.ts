/**
 * Checks store requests and turns batches into the column arrays the statements `unnest`. Everything
 * is checked before anything is sent, so a bad request never reaches the database (where it would
 * fail as a retriable store error and be redelivered forever).
 */
import {
  InvalidIdError,
  type ClaimRequest,
  type CompleteRequest,
  type ExtendRequest,
  type OwnedRef,
  type PositionedClaimRequest,
} from '@onceonly/core';

/**
 * Longest ID the store keeps, in bytes of UTF-8. The primary key's B-tree entries are limited to
 * about 2.7 kB; an ID and a scope within these bounds always fit. (The processor's default limit is
 * 256 bytes.)
 */
export const MAX_ID_BYTES = 2048;

/** Longest scope the store keeps, in bytes of UTF-8. */
export const MAX_SCOPE_BYTES = 512;

// Far beyond any sensible lease or window (35 years), and exact as a float8 of milliseconds.
const MAX_DURATION_MS = 2 ** 40;

const utf8Length = (value: string): number => Buffer.byteLength(value, 'utf8');

/**
 * PostgreSQL `text` cannot hold U+0000, and a lone surrogate has no UTF-8 form (it would be stored as
 * U+FFFD, so two strings would collide): both are refused.
 */
function unstorable(value: string): string | undefined {
  if (value.includes('\u0000')) return 'contains U+0000 (PostgreSQL text cannot hold it)';
  if (!value.isWellFormed()) return 'contains a lone surrogate (not valid Unicode)';
  return undefined;
}

/** A scope the store can keep; a `TypeError` otherwise (a programming error, never a message's fault). */
export function checkScope(scope: unknown): string {
  if (typeof scope !== 'string' || scope.length === 0) throw new TypeError('PostgresStore: scope must be a non-empty string');
  const problem = unstorable(scope);
  if (problem !== undefined) throw new TypeError(`PostgresStore: scope ${problem}`);
  if (scope.length * 3 > MAX_SCOPE_BYTES && utf8Length(scope) > MAX_SCOPE_BYTES) {
    throw new TypeError(`PostgresStore: scope is longer than ${MAX_SCOPE_BYTES} bytes of UTF-8`);
  }
  return scope;
}

/** An ID the store can keep; an `InvalidIdError` (not retriable) otherwise. */
export function checkId(id: unknown): string {
  if (typeof id !== 'string') throw new InvalidIdError('ID_INVALID', 'message ID must be a string');
  if (id.length === 0) throw new InvalidIdError('ID_MISSING', 'message ID is empty');
  const problem = unstorable(id);
  if (problem !== undefined) throw new InvalidIdError('ID_INVALID', `message ID ${problem}`);
  if (id.length * 3 > MAX_ID_BYTES && utf8Length(id) > MAX_ID_BYTES) {
    throw new InvalidIdError('ID_TOO_LONG', `message ID is ${utf8Length(id)} bytes of UTF-8; the PostgreSQL store keeps at most ${MAX_ID_BYTES}`);
  }
  return id;
}

/** A lease or window in whole milliseconds (rounded up: never shorter than asked). */
export function checkDuration(value: unknown, name: string): number {
  if (typeof value === 'number' && value > 0 && value <= MAX_DURATION_MS) return Math.ceil(value);
  throw new RangeError(`PostgresStore: ${name} must be a positive number of milliseconds up to 2^40, got ${String(value)}`);
}

/** A fencing token: any safe integer (a made-up one simply matches nothing). */
export function checkToken(value: unknown): number {
  if (Number.isSafeInteger(value)) return value as number;
  throw new RangeError(`PostgresStore: token must be a safe integer, got ${String(value)}`);
}

/** A mark position (a Kafka offset): a non-negative safe integer. */
export function checkPosition(value: unknown): number {
  if (Number.isSafeInteger(value) && (value as number) >= 0) return value as number;
  throw new RangeError(`PostgresStore: a mark position must be a non-negative safe integer, got ${String(value)}`);
}

/** An optional text (fingerprint, result, error code) as a parameter: `null` when absent. */
export function checkText(value: unknown, name: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string') throw new TypeError(`PostgresStore: ${name} must be a string`);
  const problem = unstorable(value);
  if (problem !== undefined) throw new TypeError(`PostgresStore: ${name} ${problem}`);
  return value;
}

/** A mark's name: checked as a scope is. */
export function checkMarkName(name: unknown): string {
  if (typeof name !== 'string' || name.length === 0) throw new TypeError('PostgresStore: mark name must be a non-empty string');
  const problem = unstorable(name);
  if (problem !== undefined) throw new TypeError(`PostgresStore: mark name ${problem}`);
  return name;
}

/** Column arrays of a claim batch, in request order. */
export interface ClaimColumns {
  scopes: string[];
  ids: string[];
  leases: number[];
  windows: number[];
  fingerprints: (string | null)[];
  positions: number[];
}

export function claimColumns(requests: readonly (ClaimRequest | PositionedClaimRequest)[], positioned: boolean): ClaimColumns {
  const columns: ClaimColumns = { scopes: [], ids: [], leases: [], windows: [], fingerprints: [], positions: [] };
  for (const request of requests) {
    columns.scopes.push(checkScope(request.scope));
    columns.ids.push(checkId(request.id));
    columns.leases.push(checkDuration(request.leaseMs, 'leaseMs'));
    columns.windows.push(checkDuration(request.windowMs, 'windowMs'));
    columns.fingerprints.push(checkText(request.fingerprint, 'fingerprint'));
    if (positioned) columns.positions.push(checkPosition((request as PositionedClaimRequest).position));
  }
  return columns;
}

/** Column arrays of owned references (release), plus one number per request (lease or window). */
export interface OwnedColumns {
  scopes: string[];
  ids: string[];
  tokens: number[];
}

export function ownedColumns(requests: readonly OwnedRef[]): OwnedColumns {
  const columns: OwnedColumns = { scopes: [], ids: [], tokens: [] };
  for (const request of requests) {
    columns.scopes.push(checkScope(request.scope));
    columns.ids.push(checkId(request.id));
    columns.tokens.push(checkToken(request.token));
  }
  return columns;
}

export function extendColumns(requests: readonly ExtendRequest[]): OwnedColumns & { leases: number[] } {
  return { ...ownedColumns(requests), leases: requests.map((r) => checkDuration(r.leaseMs, 'leaseMs')) };
}

export function completeColumns(requests: readonly CompleteRequest[]): OwnedColumns & { windows: number[]; results: (string | null)[] } {
  return {
    ...ownedColumns(requests),
    windows: requests.map((r) => checkDuration(r.windowMs, 'windowMs')),
    results: requests.map((r) => checkText(r.result, 'result')),
  };
}
