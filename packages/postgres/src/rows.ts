/** Turns the statements' rows into the store contract's values. */
import type { ClaimResult, DedupRecord, MarkRange } from '@onceonly/core';
import { ClaimKind } from './statements.js';

/** A row of the claim statements (see `claimText` in statements.ts). Tokens and marks arrive as text (bigint). */
export interface ClaimRow {
  ord: number;
  kind: number;
  lead: number | null;
  token: string | null;
  takeover: boolean | null;
  claimed_at: number | null;
  updated_at: number | null;
  lease_until: number | null;
  fingerprint: string | null;
  extra: string | null;
  mark_low?: string | null;
  mark_high?: string | null;
}

/** A row of the `get` statement. */
export interface RecordRow {
  state: number;
  token: string;
  claimed_at: number;
  updated_at: number;
  lease_until: number;
  fingerprint: string | null;
  extra: string | null;
}

/** A bigint column as a number. Tokens (µs since the epoch, plus claims) stay below 2^53 until 2255. */
export function toNumber(text: string | null | undefined): number {
  const value = Number(text);
  if (text === null || text === undefined || !Number.isSafeInteger(value)) throw new TypeError(`expected a safe integer from the database, got ${String(text)}`);
  return value;
}

/** The record of a found (not takeable) row: kind IN_PROGRESS, COMPLETED or FAILED. */
function recordOf(row: ClaimRow | RecordRow, state: DedupRecord['state']): DedupRecord {
  const record: {
    state: DedupRecord['state'];
    token: number;
    claimedAt: number;
    updatedAt: number;
    fingerprint?: string;
    leaseUntil?: number;
    result?: string;
    error?: string;
  } = { state, token: toNumber(row.token), claimedAt: row.claimed_at!, updatedAt: row.updated_at! };
  if (row.fingerprint !== null) record.fingerprint = row.fingerprint;
  if (state === 'in-progress') record.leaseUntil = row.lease_until!;
  else if (row.extra !== null) {
    if (state === 'completed') record.result = row.extra;
    else record.error = row.extra;
  }
  return record;
}

/**
 * What one claim row says: an answer, `'marked'` (inside the mark, not claimed), `'unresolved'`
 * (claim it again), or `{ repeatOf }` (the same ID as an earlier request: answer from that one).
 */
export type ClaimAnswer = ClaimResult | 'marked' | 'unresolved' | { readonly repeatOf: number };

export function decodeClaimRow(row: ClaimRow): ClaimAnswer {
  switch (row.kind) {
    case ClaimKind.ACQUIRED:
      return { status: 'acquired', token: toNumber(row.token), takeover: row.takeover === true, leaseUntil: row.lease_until! };
    case ClaimKind.IN_PROGRESS:
      return { status: 'in-progress', record: recordOf(row, 'in-progress') };
    case ClaimKind.COMPLETED:
      return { status: 'completed', record: recordOf(row, 'completed') };
    case ClaimKind.FAILED:
      return { status: 'failed', record: recordOf(row, 'failed') };
    case ClaimKind.MARKED:
      return 'marked';
    case ClaimKind.REPEATED:
      return { repeatOf: row.lead! - 1 };
    case ClaimKind.UNRESOLVED:
      return 'unresolved';
    default:
      throw new TypeError(`unexpected claim answer kind ${String(row.kind)}`);
  }
}

/**
 * The answer to a request that repeats an earlier one of the same batch, as if claimed right after it:
 * an acquisition by the first is a live lease for the repeat; anything else is the same answer.
 */
export function repeatAnswer(first: ClaimResult, firstClaimedAt: number, firstFingerprint: string | undefined): ClaimResult {
  if (first.status !== 'acquired') return first;
  const record: DedupRecord = {
    state: 'in-progress',
    token: first.token,
    claimedAt: firstClaimedAt,
    updatedAt: firstClaimedAt,
    leaseUntil: first.leaseUntil,
    ...(firstFingerprint === undefined ? {} : { fingerprint: firstFingerprint }),
  };
  return { status: 'in-progress', record };
}

const STATES: Readonly<Record<number, DedupRecord['state']>> = { 1: 'in-progress', 2: 'completed', 3: 'failed' };

export function decodeRecordRow(row: RecordRow): DedupRecord {
  const state = STATES[row.state];
  if (state === undefined) throw new TypeError(`unexpected record state ${String(row.state)}`);
  return recordOf(row, state);
}

export function decodeMark(low: string | null | undefined, high: string | null | undefined): MarkRange | undefined {
  if (low === null || low === undefined || high === null || high === undefined) return undefined;
  return { low: toNumber(low), high: toNumber(high) };
}
