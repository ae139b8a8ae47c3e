import { z } from 'zod';
import { parseOptions } from '../processor/options.js';
import type { DedupStore, RecordState } from './store.js';

/**
 * Optional store capability for operators (the `onceonly` CLI, dashboards, runbooks): read records as
 * they really are, list and count a scope, and purge records.
 *
 * **Not on the hot path.** Nothing in the processor or the adapters calls these methods. They may
 * cost O(records in the scope) (Redis: `SCAN` over the scope's hash slot, never `KEYS`) and are not
 * atomic across records: a scope that workers are writing to changes while it is listed, counted or
 * purged, and a listing follows the store's iteration guarantees (Redis `SCAN`: a record present the
 * whole time is returned; one may be returned twice while Redis resizes its table).
 *
 * **Purging is safe for the fencing protocol.** A worker whose record was purged while it ran gets
 * `lease-lost` from its completion, and the next claim of the ID starts a new record (with a fresh,
 * higher token). Purging is how an operator says "process these IDs again".
 */
export interface AdminStore {
  /**
   * The record of (scope, id) as the store keeps it, including released records (tombstones that read
   * as absent), expired leases and the suspect mark; `undefined` when the store keeps nothing for it.
   */
  inspect(scope: string, id: string): Promise<AdminRecord | undefined>;
  /**
   * One page of the scope's records (offset marks are not records and are left out), in store order.
   * Pass the answer's `cursor` back to read the next page; `undefined` means the scope is exhausted.
   * A page may hold fewer than `limit` entries even when more follow.
   * @throws {InvalidOptionsError} for invalid options, including a cursor this store did not hand out.
   */
  list(scope: string, options?: AdminListOptions): Promise<AdminPage>;
  /** Removes the record of (scope, id), whatever its state. Answers whether there was one. */
  purge(scope: string, id: string): Promise<boolean>;
  /**
   * Removes every record of the scope (and its offset marks with `includeMarks`), in batches, calling
   * `onProgress` after each. With `dryRun` nothing is removed and the counts say what would be.
   * Stops after the current batch when `signal` aborts, and answers what it removed so far
   * (`aborted: true`).
   * @throws {InvalidOptionsError} for invalid options.
   */
  purgeScope(scope: string, options?: AdminPurgeScopeOptions): Promise<AdminPurgeResult>;
  /** Counts the scope's records by state (one pass over the scope). */
  countByState(scope: string, options?: AdminCountOptions): Promise<AdminCounts>;
}

/**
 * A record's state as the store keeps it: the caller's {@link RecordState}s, plus `released`, a
 * tombstone left by a release (or a claim whose lease expired after one) that reads as absent but
 * keeps the fencing token for the next claim. An in-progress record whose lease has run out is still
 * `in-progress` here, with `leaseExpired: true` (it, too, reads as absent to a claim).
 */
export type AdminRecordState = RecordState | 'released';

export const ADMIN_RECORD_STATES = ['in-progress', 'completed', 'failed', 'released'] as const satisfies readonly AdminRecordState[];

/** A record as {@link AdminStore.inspect} sees it. Times are ms since the Unix epoch, store clock. */
export interface AdminRecord {
  readonly state: AdminRecordState;
  /** Fencing token of the latest claim. */
  readonly token: number;
  /** When the latest claim was made. */
  readonly claimedAt: number;
  /** When the record reached its current state (a release does not change it). */
  readonly updatedAt: number;
  /** In-progress only: when the lease runs (or ran) out. */
  readonly leaseUntil?: number;
  /** True for an in-progress record whose lease has run out: the next claim takes it over. */
  readonly leaseExpired: boolean;
  /** Payload fingerprint of the latest claim, if any. */
  readonly fingerprint?: string;
  /** Completed only, when results are recorded: the serialised result. */
  readonly result?: string;
  /** Failed only: the recorded error code or name. */
  readonly error?: string;
  /** True when an owner may have run the handler without finishing (the next claim is a takeover). */
  readonly suspect: boolean;
  /** When the store forgets the record (the window's end); `undefined` when it never expires. */
  readonly expiresAt?: number;
  /** The store clock when this was read: compare `leaseUntil` and `expiresAt` with it, not a local clock. */
  readonly readAt: number;
}

/** One listed record. */
export interface AdminEntry {
  /**
   * The message ID, when the store can recover it from its key. Redis cannot for IDs it hashed (IDs
   * whose escaped form is longer than 128 characters): then it is absent, and `keyPart` shows the hash.
   */
  readonly id?: string;
  /** The ID as it appears in the store's key (Redis: escaped, or `#` + hash). Unique within the scope. */
  readonly keyPart: string;
  readonly record: AdminRecord;
}

/** A page of {@link AdminStore.list}. */
export interface AdminPage {
  readonly entries: readonly AdminEntry[];
  /** Where the next page starts (opaque, store-specific); `undefined` when the scope is exhausted. */
  readonly cursor: string | undefined;
}

/** Caps what one admin call may ask for, so a typo cannot ask the store for millions of keys at once. */
export const MAX_ADMIN_BATCH = 10_000;

const batchSize = z.number().int().min(1).max(MAX_ADMIN_BATCH).default(500);

export const adminListOptionsSchema = z.strictObject({
  /** Only records in this state. @defaultValue every state */
  state: z.enum(ADMIN_RECORD_STATES).optional(),
  /** Most entries on the page. @defaultValue 100 */
  limit: z.number().int().min(1).max(MAX_ADMIN_BATCH).default(100),
  /** The `cursor` of the previous page. @defaultValue the start of the scope */
  cursor: z.string().min(1).optional(),
  /** How many keys the store examines per step (Redis: `SCAN ... COUNT`). @defaultValue 500 */
  batchSize,
});

/** Progress of {@link AdminStore.purgeScope}, after each batch. */
export interface AdminPurgeProgress {
  /** Records removed so far (or found, in a dry run). */
  readonly records: number;
  /** Offset marks removed so far (or found), with `includeMarks`. */
  readonly marks: number;
}

export const adminPurgeScopeOptionsSchema = z.strictObject({
  /** Count what would be removed, remove nothing. @defaultValue false */
  dryRun: z.boolean().default(false),
  /** Also remove the scope's offset high-water marks (see `MarkStore`). @defaultValue false: marks stay */
  includeMarks: z.boolean().default(false),
  /** Keys examined and removed per step. @defaultValue 500 */
  batchSize,
  /** Called after each batch with the running totals. */
  onProgress: z.custom<(progress: AdminPurgeProgress) => void>((v) => typeof v === 'function', 'must be a function').optional(),
  /** Stops the purge after the current batch. */
  signal: z.custom<AbortSignal>((v) => v instanceof AbortSignal, 'must be an AbortSignal').optional(),
});

export const adminCountOptionsSchema = z.strictObject({
  /** Keys examined per step. @defaultValue 500 */
  batchSize,
});

export type AdminListOptions = z.input<typeof adminListOptionsSchema>;
export type AdminPurgeScopeOptions = z.input<typeof adminPurgeScopeOptionsSchema>;
export type AdminCountOptions = z.input<typeof adminCountOptionsSchema>;

/** What {@link AdminStore.purgeScope} removed (or, in a dry run, would remove). */
export interface AdminPurgeResult extends AdminPurgeProgress {
  readonly dryRun: boolean;
  /** True when `signal` stopped it before the scope was exhausted. */
  readonly aborted: boolean;
}

/** Records of a scope by state. `total` is their sum. */
export interface AdminCounts {
  readonly 'in-progress': number;
  readonly completed: number;
  readonly failed: number;
  readonly released: number;
  readonly total: number;
  /** In-progress records whose lease has run out (counted in `in-progress` too). */
  readonly leaseExpired: number;
  /** Suspect records, whatever their state (counted in their state too). */
  readonly suspect: number;
  /** Offset high-water marks kept in the scope (not records: not in `total`). */
  readonly marks: number;
}

/** Validates {@link AdminListOptions}. @throws {InvalidOptionsError} */
export function parseAdminListOptions(options: AdminListOptions | undefined): z.output<typeof adminListOptionsSchema> {
  return parseOptions(adminListOptionsSchema, options, 'admin list');
}

/** Validates {@link AdminPurgeScopeOptions}. @throws {InvalidOptionsError} */
export function parseAdminPurgeScopeOptions(options: AdminPurgeScopeOptions | undefined): z.output<typeof adminPurgeScopeOptionsSchema> {
  return parseOptions(adminPurgeScopeOptionsSchema, options, 'admin purgeScope');
}

/** Validates {@link AdminCountOptions}. @throws {InvalidOptionsError} */
export function parseAdminCountOptions(options: AdminCountOptions | undefined): z.output<typeof adminCountOptionsSchema> {
  return parseOptions(adminCountOptionsSchema, options, 'admin countByState');
}

/**
 * True when `store` also implements {@link AdminStore}.
 * @example
 * if (!supportsAdmin(store)) throw new Error('this store cannot be inspected');
 * const page = await store.list('orders', { state: 'failed', limit: 20 });
 */
export function supportsAdmin<S extends DedupStore>(store: S): store is S & AdminStore {
  const s = store as Partial<AdminStore>;
  return ['inspect', 'list', 'purge', 'purgeScope', 'countByState'].every((m) => typeof (s as Record<string, unknown>)[m] === 'function');
}
