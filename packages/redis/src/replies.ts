import type { ClaimResult, DedupRecord, MarkRange, RecordState, TransitionResult } from '@onceonly/core';

/**
 * Decoding of the scripts' flat array replies (see the headers of the .lua files). Absent values
 * arrive as `null` (RESP2) or `false` (RESP3 maps a Lua `false` to a boolean), so optional fields are
 * read by type, never by comparison with null.
 */

type Reply = readonly unknown[];

const ACQUIRED = 1;
/** claim-marked-n.lua: the position lies inside the mark; nothing was claimed. */
const MARKED = 5;
const STATES: readonly (RecordState | undefined)[] = [undefined, undefined, 'in-progress', 'completed', 'failed'];

/** Thrown when a reply does not have the shape the script promises (a version mix-up or a bug). */
export class UnexpectedReplyError extends Error {
  override readonly name = 'UnexpectedReplyError';
}

/**
 * Decodes the claim answers starting at `offset` of `reply` into `results`, one per index in `slots`
 * (or at 0, 1, 2, ... when `slots` is undefined). Returns nothing; throws on a malformed reply.
 */
export function decodeClaims(
  reply: unknown,
  results: ClaimResult[],
  slots: readonly number[] | undefined,
  count: number,
): void {
  if (!Array.isArray(reply)) throw new UnexpectedReplyError('claim reply is not an array');
  const at = decodeClaimAnswers(reply, 0, results, slots, count);
  if (at !== reply.length) throw new UnexpectedReplyError('claim reply has unexpected length');
}

/** Decodes a mark's low and high at `at` (both false when there is no mark). */
export function decodeMark(reply: Reply, at: number): MarkRange | undefined {
  const low = reply[at];
  const high = reply[at + 1];
  if (typeof low === 'number' && typeof high === 'number') return { low, high };
  if ((low === null || low === false) && (high === null || high === false)) return undefined;
  throw new UnexpectedReplyError('mark reply is malformed');
}

/** Decodes claim-marked-n.lua's reply: the mark, then one answer per request (undefined: inside the mark). */
export function decodeMarkedClaims(reply: unknown, count: number): { mark: MarkRange | undefined; claims: (ClaimResult | undefined)[] } {
  if (!Array.isArray(reply)) throw new UnexpectedReplyError('claim reply is not an array');
  const mark = decodeMark(reply, 0);
  const claims: (ClaimResult | undefined)[] = [];
  let at = 2;
  for (let i = 0; i < count; i++) {
    if (reply[at] === MARKED) {
      claims.push(undefined);
      at += 1;
    } else {
      const one: ClaimResult[] = [];
      at = decodeClaimAnswers(reply, at, one, undefined, 1);
      claims.push(one[0]);
    }
  }
  if (at !== reply.length) throw new UnexpectedReplyError('claim reply has unexpected length');
  return { mark, claims };
}

/** Decodes complete-marked-n.lua's reply: one 1/0 per request, then the mark. */
export function decodeMarkedCompletions(reply: unknown, count: number): { results: TransitionResult[]; mark: MarkRange | undefined } {
  if (!Array.isArray(reply) || reply.length !== count + 2) throw new UnexpectedReplyError('batch reply does not have one answer per key and a mark');
  const results: TransitionResult[] = [];
  for (let i = 0; i < count; i++) results.push(decodeTransition(reply[i]));
  return { results, mark: decodeMark(reply, count) };
}

function decodeClaimAnswers(
  reply: Reply,
  start: number,
  results: ClaimResult[],
  slots: readonly number[] | undefined,
  count: number,
): number {
  let at = start;
  for (let i = 0; i < count; i++) {
    const code = reply[at];
    let result: ClaimResult;
    if (code === ACQUIRED) {
      result = {
        status: 'acquired',
        token: int(reply[at + 1]),
        takeover: reply[at + 2] === 1,
        leaseUntil: int(reply[at + 3]),
      };
      at += 4;
    } else {
      const record = decodeRecord(reply, at);
      result = { status: record.state, record };
      at += 7;
    }
    results[slots === undefined ? i : slots[i]!] = result;
  }
  return at;
}

/** Decodes the 7 values of a found record at `at`. */
export function decodeRecord(reply: Reply, at: number): DedupRecord {
  const state = STATES[reply[at] as number];
  if (state === undefined) throw new UnexpectedReplyError('record reply has an unknown state');
  const record: {
    state: RecordState;
    token: number;
    claimedAt: number;
    updatedAt: number;
    leaseUntil?: number;
    fingerprint?: string;
    result?: string;
    error?: string;
  } = {
    state,
    token: int(reply[at + 1]),
    claimedAt: int(reply[at + 2]),
    updatedAt: int(reply[at + 3]),
  };
  const leaseUntil = reply[at + 4];
  if (typeof leaseUntil === 'number') record.leaseUntil = leaseUntil;
  const fingerprint = reply[at + 5];
  if (typeof fingerprint === 'string') record.fingerprint = fingerprint;
  const extra = reply[at + 6];
  if (typeof extra === 'string') {
    if (state === 'completed') record.result = extra;
    else record.error = extra;
  }
  return record;
}

/** Decodes a single transition's 1/0. */
export function decodeTransition(reply: unknown): TransitionResult {
  if (reply === 1) return 'ok';
  if (reply === 0) return 'lease-lost';
  throw new UnexpectedReplyError('transition reply is not 0 or 1');
}

/** Decodes a batch of 1/0 into `results` at `slots` (or in order). */
export function decodeTransitions(
  reply: unknown,
  results: TransitionResult[],
  slots: readonly number[] | undefined,
  count: number,
): void {
  if (!Array.isArray(reply) || reply.length !== count) {
    throw new UnexpectedReplyError('batch reply does not have one answer per key');
  }
  for (let i = 0; i < count; i++) results[slots === undefined ? i : slots[i]!] = decodeTransition(reply[i]);
}

function int(value: unknown): number {
  if (typeof value !== 'number') throw new UnexpectedReplyError('reply holds a non-integer where a number belongs');
  return value;
}
