import type { ClaimResult, DedupRecord, MarkRange, RecordState, TransitionResult } from '@onceonly/core';
import { decodeRecordValue, type StoredRecord } from './record-value.js';

/**
 * Decoding of the scripts' flat array replies (see the headers of the .lua files). The scripts that
 * answer records are called in their Buffer form (a record value is binary), so bulk strings arrive
 * as Buffers. Absent values arrive as `null` (RESP2) or `false` (RESP3 maps a Lua `false` to a
 * boolean), so optional fields are read by type, never by comparison with null.
 */

type Reply = readonly unknown[];

/** A first claim: the token is the call's time seed, no takeover. */
const FIRST = 1;
const FOUND = 2;
/** Acquired over a record (a tombstone or an expired lease): token and takeover follow. */
const ACQUIRED = 3;
/** claim-marked-n.lua: the position lies inside the mark; nothing was claimed. */
const MARKED = 5;
const STATES: readonly (RecordState | undefined)[] = [undefined, 'in-progress', 'completed', 'failed'];

/** Thrown when a reply does not have the shape the script promises (a version mix-up or a bug). */
export class UnexpectedReplyError extends Error {
  override readonly name = 'UnexpectedReplyError';
}

/**
 * A claim script's first value: the scope's epoch, or `undefined` when the call wrote it (the scope
 * had none).
 */
export function decodeEpoch(reply: Reply): string | undefined {
  const epoch = reply[0];
  if (epoch === null || epoch === false) return undefined;
  if (Buffer.isBuffer(epoch)) return epoch.toString('utf8');
  if (typeof epoch === 'string') return epoch;
  throw new UnexpectedReplyError('claim reply has no epoch');
}

/** The lease (ms, as sent) of the call's i-th claim: an acquired claim's lease runs until now + it. */
export type LeaseOf = (i: number) => number;

/**
 * Decodes the claim answers of claim-2.lua or claim-n.lua (after the epoch, now and seed) into
 * `results`, one per index in `slots` (or at 0, 1, 2, ... when `slots` is undefined). Answers the
 * epoch; throws on a malformed reply.
 */
export function decodeClaims(
  reply: unknown,
  results: ClaimResult[],
  slots: readonly number[] | undefined,
  count: number,
  leaseOf: LeaseOf,
): string | undefined {
  if (!Array.isArray(reply)) throw new UnexpectedReplyError('claim reply is not an array');
  const at = decodeClaimAnswers(reply, 3, int(reply[1]), int(reply[2]), results, slots, count, leaseOf);
  if (at !== reply.length) throw new UnexpectedReplyError('claim reply has unexpected length');
  return decodeEpoch(reply);
}

/** Decodes a mark's low and high at `at` (both false when there is no mark). */
export function decodeMark(reply: Reply, at: number): MarkRange | undefined {
  const low = reply[at];
  const high = reply[at + 1];
  if (typeof low === 'number' && typeof high === 'number') return { low, high };
  if ((low === null || low === false) && (high === null || high === false)) return undefined;
  throw new UnexpectedReplyError('mark reply is malformed');
}

/** Decodes claim-marked-n.lua's reply: the epoch, the mark, then one answer per request (undefined: inside the mark). */
export function decodeMarkedClaims(
  reply: unknown,
  count: number,
  leaseOf: LeaseOf,
): { epoch: string | undefined; mark: MarkRange | undefined; claims: (ClaimResult | undefined)[] } {
  if (!Array.isArray(reply)) throw new UnexpectedReplyError('claim reply is not an array');
  const now = int(reply[1]);
  const seed = int(reply[2]);
  const mark = decodeMark(reply, 3);
  const claims: (ClaimResult | undefined)[] = [];
  let at = 5;
  for (let i = 0; i < count; i++) {
    if (reply[at] === MARKED) {
      claims.push(undefined);
      at += 1;
    } else {
      const one: ClaimResult[] = [];
      at = decodeClaimAnswers(reply, at, now, seed, one, undefined, 1, () => leaseOf(i));
      claims.push(one[0]);
    }
  }
  if (at !== reply.length) throw new UnexpectedReplyError('claim reply has unexpected length');
  return { epoch: decodeEpoch(reply), mark, claims };
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
  now: number,
  seed: number,
  results: ClaimResult[],
  slots: readonly number[] | undefined,
  count: number,
  leaseOf: LeaseOf,
): number {
  let at = start;
  for (let i = 0; i < count; i++) {
    const code = reply[at];
    let result: ClaimResult;
    if (code === FIRST) {
      result = { status: 'acquired', token: seed, takeover: false, leaseUntil: now + leaseOf(i) };
      at += 1;
    } else if (code === ACQUIRED) {
      result = { status: 'acquired', token: int(reply[at + 1]), takeover: reply[at + 2] === 1, leaseUntil: now + leaseOf(i) };
      at += 3;
    } else if (code === FOUND) {
      const record = decodeRecord(reply[at + 1]);
      result = { status: record.state, record };
      at += 2;
    } else {
      throw new UnexpectedReplyError('claim reply has an unknown answer code');
    }
    results[slots === undefined ? i : slots[i]!] = result;
  }
  return at;
}

/** A found record's value (a Buffer, see ./record-value.ts) as the contract's record. */
export function decodeRecord(value: unknown): DedupRecord {
  if (!Buffer.isBuffer(value)) throw new UnexpectedReplyError('record reply is not a value');
  return toDedupRecord(decodeRecordValue(value));
}

/** A stored record as the contract's record: tombstones never reach here (the scripts answer them as absent). */
export function toDedupRecord(stored: StoredRecord): DedupRecord {
  const state = STATES[stored.state];
  if (state === undefined) throw new UnexpectedReplyError('record reply is a tombstone');
  return {
    state,
    token: stored.token,
    claimedAt: stored.claimedAt,
    updatedAt: stored.updatedAt,
    ...(state === 'in-progress' && stored.leaseUntil !== undefined ? { leaseUntil: stored.leaseUntil } : {}),
    ...(stored.fingerprint === undefined ? {} : { fingerprint: stored.fingerprint }),
    ...(stored.extra === undefined ? {} : state === 'completed' ? { result: stored.extra } : { error: stored.extra }),
  };
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
