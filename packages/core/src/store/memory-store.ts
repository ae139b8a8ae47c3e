import { advanceMark } from './store.js';
import type {
  ClaimRequest,
  ClaimResult,
  CompleteRequest,
  DedupRecord,
  DedupStore,
  ExtendRequest,
  FailRequest,
  MarkAdvance,
  MarkRange,
  MarkRef,
  MarkStore,
  OwnedRef,
  PositionedClaimRequest,
  TransitionResult,
} from './store.js';
import { joinToken, packFingerprint, TOKEN_HIGH_BITS, tokenHigh, tokenLow, unpackFingerprint } from './record-codec.js';
import { IdKeyHasher } from './id-key.js';

export interface MemoryStoreOptions {
  /**
   * Most records kept at once. When full, the oldest record (the first to expire) is evicted; evicting one
   * whose window has not ended weakens the promise and is counted in `stats().evictedEarly`.
   * @defaultValue 1_000_000
   */
  capacity?: number;
  /** Milliseconds since the epoch. Tests pass a fake clock. @defaultValue Date.now */
  clock?: () => number;
  /**
   * Called for every record evicted before its window ended, synchronously inside the claim that
   * evicts it (so it must not call the store). The store keeps only a hash of each ID; with this
   * option it also keeps the ID strings to pass them here (for UUIDs, about 64 more bytes a record).
   */
  onEarlyEviction?: (scope: string, id: string) => void;
}

export interface MemoryStoreStats {
  /** Records held now (including expired ones not yet swept). */
  size: number;
  capacity: number;
  /** Records evicted for capacity before their window ended. */
  evictedEarly: number;
  /** Records dropped because their window (or, for in-progress, their retention) ended. */
  expired: number;
}

const IN_PROGRESS = 1;
const COMPLETED = 2;
const FAILED = 3;
// A released claim that must stay suspect (see the store contract): reads as absent, but the next
// claim of the ID is a takeover.
const RELEASED_SUSPECT = 4;
const STATE_NAMES = ['', 'in-progress', 'completed', 'failed'] as const;
// Every SWEEP_EVERY claims, up to 2 * SWEEP_EVERY expired records are dropped from the front of the
// scope's order: more than the claims add, so expiry keeps pace, O(1) amortised, with no timer.
const SWEEP_EVERY = 32;

// ---- Record layout: one 48-byte record per slot in one ArrayBuffer, seen as float64 and int32. ----
const RECORD_BYTES = 48;
const F64_STRIDE = RECORD_BYTES / 8;
const I32_STRIDE = RECORD_BYTES / 4;
// float64 fields (index in the record's 6 doubles)
/** When the current claim was made (epoch ms, store clock). */
const CLAIMED_AT = 0;
/** In progress or released: when the lease ends. Completed or failed: when it finished (`updatedAt`). */
const T1 = 1;
// int32 fields (index in the record's 12 words; words 0-3 are the doubles above)
/** The 128-bit key of (scope, ID): words KEY..KEY+3. Word KEY picks the bucket in the scope's table. */
const KEY = 4;
/** Previous and next record in the scope's claim order, -1 at the ends. NEXT also links free slots. */
const PREV = 8;
const NEXT = 9;
/** Fencing token, low 32 bits. The high 21 bits are in META: 53 bits, every safe integer. */
const TOKEN_LO = 10;
/**
 * bits 0-20 token high bits · 21-23 state · 24 suspect · 25 compact fingerprint in `#fpWords` ·
 * 26 an `#aux` entry · 27-31 window index in `#windows` (31: the window is in the `#aux` entry).
 */
const META = 11;
const STATE_SHIFT = TOKEN_HIGH_BITS;
const SUSPECT = 1 << 24;
const PACKED_FP = 1 << 25;
const HAS_AUX = 1 << 26;
const WINDOW_SHIFT = 27;
const WINDOW_IN_AUX = 31;

/** Per-record extras, kept only when present: most records have none. */
interface Aux {
  /** A fingerprint that is not 22 base64url characters (a user function's text). */
  fingerprint?: string;
  /** The recorded result (completed) or error code (failed). */
  extra?: string;
  /** A window not in the store's table of windows (more than 31 distinct windows). */
  windowMs?: number;
}

/**
 * One scope: an open-addressing index of its keys, and its records in claim order.
 * The index probes linearly from bucket `key word 0 & mask`; an entry is `slot + 1` in its low bits and,
 * above them, the high bits of key word 1 as a tag, so a probe reads a record only when its tag
 * matches (1 in 2^tag bits otherwise: 4096 at the default capacity). 0 is an empty bucket. Size a
 * power of two, at most 3/4 full; deletion shifts entries back (no tombstones).
 */
interface Scope {
  table: Int32Array;
  mask: number;
  count: number;
  head: number;
  tail: number;
}

const MIN_TABLE = 16;
/**
 * Recent claims, direct-mapped by token: an owner's extend/complete/release finds its record here by
 * token and checks scope and ID by string comparison, with no hash. A claim older than the last
 * RECENT claims (or overwritten by one) is found by hashing its ID instead.
 */
const RECENT = 4096;

/**
 * The embedded default store: one process, bounded, no timers.
 *
 * **Layout.** Each record is 48 bytes in one `ArrayBuffer` (growing by doubling up to `capacity`):
 * claim time and lease end or finish time (float64 epoch ms: exact for any window or lease, nothing to
 * overflow), a 128-bit key of the ID, links in its scope's claim order, a 53-bit fencing token, state,
 * suspect flag and the window (an index into the few distinct windows the store has seen; the expiry
 * is derived from it). Each scope indexes its keys in an open-addressing table of 4-byte entries,
 * 3/8 to 3/4 full (5.3 to 10.7 bytes a record). A fingerprint made by `fingerprintOf` (22 base64url
 * characters) adds 17 bytes in two side columns allocated on first use; other fingerprints, results
 * and error codes are kept in a side map. Measured: 55 to 57 bytes a completed record without a
 * fingerprint at 1 M to 10 M records, 74 with one, whatever the length of the ID.
 *
 * **Keys, not IDs.** The store keeps a salted SHA-256 of each ID truncated to 128 bits, not the ID
 * (see `IdKeyHasher` for the collision odds: below 3e-32 per claim at 10 M records). Nothing in the
 * store contract needs an ID back: `get` hashes the ID it is asked for. The last 4096 claims are also
 * remembered by token with their ID (a fixed ring), so an owner's extend, complete and release find
 * their record by token and a string comparison; older claims are found by hashing the ID.
 *
 * **Expiry.** Each scope's records are linked in order of claim. With one window per scope the front is
 * the next to expire, give or take the time a handler ran, and claims sweep it. Reads check expiry
 * themselves, so a record past its window never answers, swept or not.
 * Fencing tokens come from one counter for the whole store: they grow with every claim and are never
 * reused, even for an ID whose record was evicted or released.
 *
 * Each transition runs synchronously, so it is atomic with respect to every other caller in the
 * process.
 *
 * @example
 * const store = new MemoryStore({ capacity: 100_000 });
 * const processor = new DedupProcessor({ scope: 'emails', store });
 */
export class MemoryStore implements DedupStore, MarkStore {
  readonly #capacity: number;
  readonly #clock: () => number;
  readonly #onEarlyEviction: ((scope: string, id: string) => void) | undefined;
  readonly #hasher = new IdKeyHasher();
  /** The key of the ID being claimed or read (written by the hasher). */
  readonly #key = new Int32Array(4);
  readonly #scopes = new Map<string, Scope>();
  /** Offset high-water marks by scope, then name. Not windowed: one small entry per partition. */
  readonly #marks = new Map<string, Map<string, MarkRange>>();

  #tokenCounter = 0;
  #claimsUntilSweep = SWEEP_EVERY;
  #size = 0;
  #evictedEarly = 0;
  #expired = 0;

  #f64!: Float64Array;
  #i32!: Int32Array;
  /** Slots the buffer holds. */
  #length = 0;
  /** Slots ever handed out (the rest of the buffer is untouched). */
  #allocated = 0;
  /** First free slot, -1 when none; free slots are chained through NEXT. */
  #freeHead = -1;
  /** Compact fingerprints: 4 words a slot, and a 4-bit tail a slot. Allocated on first use. */
  #fpWords: Int32Array | undefined;
  #fpTails: Uint8Array | undefined;
  #aux = new Map<number, Aux>();
  /** The distinct windows seen (at most 31): records keep an index into it. */
  #windows: number[] = [];
  /** Table entries: slot + 1 in the bits of `#slotMask`, a tag from key word 1 in those of `#tagMask` (see {@link Scope}). */
  readonly #slotMask: number;
  readonly #tagMask: number;
  readonly #recentTokens = new Float64Array(RECENT);
  readonly #recentSlots = new Int32Array(RECENT);
  readonly #recentScopes: (string | undefined)[] = new Array<string | undefined>(RECENT).fill(undefined);
  readonly #recentIds: (string | undefined)[] = new Array<string | undefined>(RECENT).fill(undefined);
  /** ID strings by slot, kept only for `onEarlyEviction`. */
  #ids: (string | undefined)[] | undefined;

  constructor(options: MemoryStoreOptions = {}) {
    const capacity = options.capacity ?? 1_000_000;
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`MemoryStore option "capacity" must be a positive integer, got ${String(capacity)}`);
    }
    this.#capacity = capacity;
    // Slots go up to capacity - 1, so entries need the bits of `capacity`; the rest are the tag.
    const slotBits = Math.min(31, 32 - Math.clz32(Math.min(capacity, 0x7fff_ffff)));
    this.#slotMask = slotBits === 31 ? 0x7fff_ffff : (1 << slotBits) - 1;
    this.#tagMask = ~this.#slotMask;
    this.#clock = options.clock ?? Date.now;
    this.#onEarlyEviction = options.onEarlyEviction;
    this.#reset();
  }

  stats(): MemoryStoreStats {
    return { size: this.#size, capacity: this.#capacity, evictedEarly: this.#evictedEarly, expired: this.#expired };
  }

  async claim(request: ClaimRequest): Promise<ClaimResult> {
    return this.#claim(request, this.#now());
  }

  async claimMany(requests: readonly ClaimRequest[]): Promise<ClaimResult[]> {
    const now = this.#now();
    return requests.map((request) => this.#claim(request, now));
  }

  async extend(request: ExtendRequest): Promise<TransitionResult> {
    return this.#extend(request, this.#now());
  }

  async extendMany(requests: readonly ExtendRequest[]): Promise<TransitionResult[]> {
    const now = this.#now();
    return requests.map((request) => this.#extend(request, now));
  }

  async complete(request: CompleteRequest): Promise<TransitionResult> {
    return this.#finish(request, COMPLETED, request.result, this.#now());
  }

  async completeMany(requests: readonly CompleteRequest[]): Promise<TransitionResult[]> {
    const now = this.#now();
    return requests.map((request) => this.#finish(request, COMPLETED, request.result, now));
  }

  async fail(request: FailRequest): Promise<TransitionResult> {
    return this.#finish(request, FAILED, request.error, this.#now());
  }

  async release(request: OwnedRef): Promise<TransitionResult> {
    return this.#release(request);
  }

  async releaseMany(requests: readonly OwnedRef[]): Promise<TransitionResult[]> {
    return requests.map((request) => this.#release(request));
  }

  async get(scope: string, id: string): Promise<DedupRecord | undefined> {
    const records = this.#scopes.get(scope);
    if (records === undefined) return undefined;
    this.#hasher.key(id, this.#key);
    const slot = this.#find(records);
    if (slot < 0) return undefined;
    const now = this.#now();
    if (this.#expiresAt(slot) <= now) return undefined;
    const state = this.#state(slot);
    if (state === RELEASED_SUSPECT || (state === IN_PROGRESS && this.#f64[slot * F64_STRIDE + T1]! <= now)) return undefined;
    return this.#record(slot);
  }

  async claimManyMarked(
    mark: MarkRef,
    requests: readonly PositionedClaimRequest[],
    skipMarked: boolean,
  ): Promise<{ mark: MarkRange | undefined; claims: (ClaimResult | undefined)[] }> {
    const now = this.#now();
    const range = this.#marks.get(mark.scope)?.get(mark.name);
    const inside = (position: number) => skipMarked && range !== undefined && position >= range.low && position <= range.high;
    return { mark: range, claims: requests.map((request) => (inside(request.position) ? undefined : this.#claim(request, now))) };
  }

  async completeManyMarked(
    mark: MarkRef,
    requests: readonly CompleteRequest[],
    advance: MarkAdvance | undefined,
  ): Promise<{ results: TransitionResult[]; mark: MarkRange | undefined }> {
    const now = this.#now();
    const results = requests.map((request) => this.#finish(request, COMPLETED, request.result, now));
    let marks = this.#marks.get(mark.scope);
    if (advance !== undefined && results.every((r) => r === 'ok')) {
      if (!marks) this.#marks.set(mark.scope, (marks = new Map()));
      marks.set(mark.name, advanceMark(marks.get(mark.name), advance));
    }
    return { results, mark: marks?.get(mark.name) };
  }

  async getMark(mark: MarkRef): Promise<MarkRange | undefined> {
    return this.#marks.get(mark.scope)?.get(mark.name);
  }

  async deleteMark(mark: MarkRef): Promise<void> {
    this.#marks.get(mark.scope)?.delete(mark.name);
  }

  async close(): Promise<void> {
    this.#marks.clear();
    this.#scopes.clear();
    this.#reset();
  }

  // ---- transitions ----

  #claim(request: ClaimRequest, now: number): ClaimResult {
    let scope = this.#scopes.get(request.scope);
    this.#hasher.key(request.id, this.#key);
    let takeover = false;
    if (scope !== undefined) {
      const slot = this.#find(scope);
      if (slot >= 0) {
        if (this.#expiresAt(slot) > now) {
          const state = this.#state(slot);
          if (state === COMPLETED || state === FAILED) {
            return { status: state === COMPLETED ? 'completed' : 'failed', record: this.#record(slot) };
          }
          if (state === IN_PROGRESS && this.#f64[slot * F64_STRIDE + T1]! > now) return { status: 'in-progress', record: this.#record(slot) };
          // An expired lease: its owner may have run the handler. A suspect release: an earlier one may have.
          takeover = state === IN_PROGRESS || (this.#i32[slot * I32_STRIDE + META]! & SUSPECT) !== 0;
        }
        this.#remove(scope, slot);
      }
    }
    if (--this.#claimsUntilSweep === 0) {
      this.#claimsUntilSweep = SWEEP_EVERY;
      if (scope !== undefined) this.#sweep(scope, now);
    }
    const key = this.#key;
    const k0 = key[0]!;
    const k1 = key[1]!;
    const k2 = key[2]!;
    const k3 = key[3]!; // before eviction: its callback may use the store
    if (this.#size >= this.#capacity) {
      this.#evictOne(now);
      scope = undefined; // eviction may have dropped this scope (emptied): look it up again
    }
    scope ??= this.#scopeFor(request.scope);

    const slot = this.#allocSlot();
    const token = ++this.#tokenCounter;
    const leaseUntil = now + request.leaseMs;
    const f = slot * F64_STRIDE;
    const o = slot * I32_STRIDE;
    const f64 = this.#f64;
    const i32 = this.#i32;
    f64[f + CLAIMED_AT] = now;
    f64[f + T1] = leaseUntil;
    i32[o + KEY] = k0;
    i32[o + KEY + 1] = k1;
    i32[o + KEY + 2] = k2;
    i32[o + KEY + 3] = k3;
    i32[o + TOKEN_LO] = tokenLow(token);
    let meta = tokenHigh(token) | (IN_PROGRESS << STATE_SHIFT) | (takeover ? SUSPECT : 0);
    const fingerprint = request.fingerprint;
    if (fingerprint !== undefined) {
      if (this.#packFingerprint(fingerprint, slot)) meta |= PACKED_FP;
      else {
        this.#aux.set(slot, { fingerprint });
        meta |= HAS_AUX;
      }
    }
    i32[o + META] = this.#withWindow(slot, meta, request.windowMs);
    this.#insert(scope, slot);
    this.#link(scope, slot);
    const recent = token & (RECENT - 1);
    this.#recentTokens[recent] = token;
    this.#recentSlots[recent] = slot;
    this.#recentScopes[recent] = request.scope;
    this.#recentIds[recent] = request.id;
    if (this.#ids !== undefined) this.#ids[slot] = request.id;
    return { status: 'acquired', token, takeover, leaseUntil };
  }

  /** The slot of the caller's in-progress claim, or -1 when the token is stale or the record is not in progress. */
  #owned(scope: Scope | undefined, ref: OwnedRef): number {
    if (scope === undefined) return -1;
    let slot: number;
    const recent = ref.token & (RECENT - 1);
    if (this.#recentTokens[recent] === ref.token) {
      // The claim that got this token (tokens are never reused): its record, if the ID is the caller's.
      if (this.#recentIds[recent] !== ref.id || this.#recentScopes[recent] !== ref.scope) return -1;
      slot = this.#recentSlots[recent]!;
    } else {
      this.#hasher.key(ref.id, this.#key);
      slot = this.#find(scope);
      if (slot < 0) return -1;
    }
    // The slot may since have finished, been released or been reused: only the live claim has the token.
    if (this.#state(slot) !== IN_PROGRESS || this.#token(slot) !== ref.token) return -1;
    return slot;
  }

  #extend(request: ExtendRequest, now: number): TransitionResult {
    const slot = this.#owned(this.#scopes.get(request.scope), request);
    if (slot < 0) return 'lease-lost';
    // An expired lease that nobody took over is still this owner's: no other claim bumped the token.
    // The record's retention follows: it is the later of claim + window and the lease end.
    const f = slot * F64_STRIDE + T1;
    this.#f64[f] = Math.max(this.#f64[f]!, now + request.leaseMs);
    return 'ok';
  }

  #finish(ref: OwnedRef & { windowMs: number }, state: number, extra: string | undefined, now: number): TransitionResult {
    const scope = this.#scopes.get(ref.scope);
    const slot = this.#owned(scope, ref);
    if (slot < 0) return 'lease-lost';
    const o = slot * I32_STRIDE + META;
    let meta = (this.#i32[o]! & ~((7 << STATE_SHIFT) | SUSPECT)) | (state << STATE_SHIFT);
    this.#f64[slot * F64_STRIDE + T1] = now; // the claim time stays in CLAIMED_AT
    if (extra !== undefined) {
      const aux = this.#aux.get(slot);
      if (aux !== undefined) aux.extra = extra;
      else this.#aux.set(slot, { extra });
      meta |= HAS_AUX;
    }
    this.#i32[o] = this.#withWindow(slot, meta, ref.windowMs);
    return 'ok';
  }

  #release(ref: OwnedRef): TransitionResult {
    const scope = this.#scopes.get(ref.scope);
    const slot = this.#owned(scope, ref);
    if (slot < 0) return 'lease-lost';
    const o = slot * I32_STRIDE + META;
    const meta = this.#i32[o]!;
    if ((meta & SUSPECT) !== 0) {
      // Kept (until the claim's retention ends) so the next claim is still reported as a takeover.
      this.#i32[o] = (meta & ~(7 << STATE_SHIFT)) | (RELEASED_SUSPECT << STATE_SHIFT);
      return 'ok';
    }
    this.#remove(scope!, slot);
    return 'ok';
  }

  // ---- record fields ----

  #state(slot: number): number {
    return (this.#i32[slot * I32_STRIDE + META]! >>> STATE_SHIFT) & 7;
  }

  #token(slot: number): number {
    const o = slot * I32_STRIDE;
    return joinToken(this.#i32[o + META]!, this.#i32[o + TOKEN_LO]!);
  }

  #windowOf(slot: number, meta: number): number {
    const index = meta >>> WINDOW_SHIFT;
    return index === WINDOW_IN_AUX ? this.#aux.get(slot)!.windowMs! : this.#windows[index]!;
  }

  /**
   * When the record may be dropped. Finished: finish time + window. In progress (and released): the
   * later of claim time + window and the lease end, which is what claim (now + max(window, lease)) and
   * extend (max(retention, now + lease)) made it, to the bit.
   */
  #expiresAt(slot: number): number {
    const meta = this.#i32[slot * I32_STRIDE + META]!;
    const windowMs = this.#windowOf(slot, meta);
    const state = (meta >>> STATE_SHIFT) & 7;
    const f = slot * F64_STRIDE;
    if (state === COMPLETED || state === FAILED) return this.#f64[f + T1]! + windowMs;
    return Math.max(this.#f64[f + CLAIMED_AT]! + windowMs, this.#f64[f + T1]!);
  }

  /** `meta` with the window's index, keeping a window beyond the table's 31 in the slot's aux entry. */
  #withWindow(slot: number, meta: number, windowMs: number): number {
    let index = this.#windows.indexOf(windowMs);
    if (index < 0 && this.#windows.length < WINDOW_IN_AUX) index = this.#windows.push(windowMs) - 1;
    meta &= ~(WINDOW_IN_AUX << WINDOW_SHIFT);
    let aux = (meta & HAS_AUX) !== 0 ? this.#aux.get(slot) : undefined;
    if (index >= 0) {
      if (aux?.windowMs !== undefined) {
        delete aux.windowMs;
        if (aux.fingerprint === undefined && aux.extra === undefined) {
          this.#aux.delete(slot);
          meta &= ~HAS_AUX;
        }
      }
      return meta | (index << WINDOW_SHIFT);
    }
    if (aux === undefined) this.#aux.set(slot, (aux = {}));
    aux.windowMs = windowMs;
    return meta | HAS_AUX | (WINDOW_IN_AUX << WINDOW_SHIFT);
  }

  #packFingerprint(fingerprint: string, slot: number): boolean {
    if (this.#fpWords === undefined || this.#fpTails === undefined) {
      this.#fpWords = new Int32Array(this.#length * 4);
      this.#fpTails = new Uint8Array(this.#length);
    }
    return packFingerprint(fingerprint, this.#fpWords, slot * 4, this.#fpTails, slot);
  }

  #record(slot: number): DedupRecord {
    const o = slot * I32_STRIDE;
    const f = slot * F64_STRIDE;
    const meta = this.#i32[o + META]!;
    const state = (meta >>> STATE_SHIFT) & 7;
    const claimedAt = this.#f64[f + CLAIMED_AT]!;
    const t1 = this.#f64[f + T1]!;
    const record: {
      state: DedupRecord['state'];
      token: number;
      claimedAt: number;
      updatedAt: number;
      fingerprint?: string;
      leaseUntil?: number;
      result?: string;
      error?: string;
    } = {
      state: STATE_NAMES[state] as DedupRecord['state'],
      token: this.#token(slot),
      claimedAt,
      updatedAt: state === IN_PROGRESS ? claimedAt : t1,
    };
    const aux = (meta & HAS_AUX) !== 0 ? this.#aux.get(slot) : undefined;
    if ((meta & PACKED_FP) !== 0) record.fingerprint = unpackFingerprint(this.#fpWords!, slot * 4, this.#fpTails!, slot);
    else if (aux?.fingerprint !== undefined) record.fingerprint = aux.fingerprint;
    if (state === IN_PROGRESS) record.leaseUntil = t1;
    if (aux?.extra !== undefined) {
      if (state === COMPLETED) record.result = aux.extra;
      else record.error = aux.extra;
    }
    return record;
  }

  // ---- scopes: key index and claim order ----

  #scopeFor(name: string): Scope {
    let scope = this.#scopes.get(name);
    if (scope === undefined) {
      scope = { table: new Int32Array(MIN_TABLE), mask: MIN_TABLE - 1, count: 0, head: -1, tail: -1 };
      this.#scopes.set(name, scope);
    }
    return scope;
  }

  /** The slot whose key is `#key`, or -1. */
  #find(scope: Scope): number {
    const i32 = this.#i32;
    const table = scope.table;
    const mask = scope.mask;
    const slotMask = this.#slotMask;
    const tagMask = this.#tagMask;
    const k0 = this.#key[0]!;
    const k1 = this.#key[1]!;
    const tag = k1 & tagMask;
    for (let b = k0 & mask; ; b = (b + 1) & mask) {
      const entry = table[b]!;
      if (entry === 0) return -1;
      if ((entry & tagMask) !== tag) continue;
      const slot = (entry & slotMask) - 1;
      const o = slot * I32_STRIDE + KEY;
      if (i32[o] === k0 && i32[o + 1] === k1 && i32[o + 2] === this.#key[2] && i32[o + 3] === this.#key[3]) return slot;
    }
  }

  /** The table entry of `slot`: its number and its key's tag. */
  #entry(slot: number): number {
    return (this.#i32[slot * I32_STRIDE + KEY + 1]! & this.#tagMask) | (slot + 1);
  }

  /** Indexes `slot` (whose key is not in the table yet). */
  #insert(scope: Scope, slot: number): void {
    if ((scope.count + 1) * 4 > scope.table.length * 3) this.#growTable(scope);
    scope.count++;
    const table = scope.table;
    const mask = scope.mask;
    let b = this.#i32[slot * I32_STRIDE + KEY]! & mask;
    while (table[b] !== 0) b = (b + 1) & mask;
    table[b] = this.#entry(slot);
  }

  /** Drops `slot` from the index, shifting later entries of its probe run back (no tombstones). */
  #unindex(scope: Scope, slot: number): void {
    const i32 = this.#i32;
    const table = scope.table;
    const mask = scope.mask;
    const slotMask = this.#slotMask;
    const entryOfSlot = this.#entry(slot);
    let hole = i32[slot * I32_STRIDE + KEY]! & mask;
    while (table[hole] !== entryOfSlot) hole = (hole + 1) & mask;
    for (let next = (hole + 1) & mask; table[next] !== 0; next = (next + 1) & mask) {
      const entry = table[next]!;
      const home = i32[((entry & slotMask) - 1) * I32_STRIDE + KEY]! & mask;
      // The entry may move into the hole unless its home lies cyclically in (hole, next].
      if (((next - home) & mask) >= ((next - hole) & mask)) {
        table[hole] = entry;
        hole = next;
      }
    }
    table[hole] = 0;
    scope.count--;
  }

  #growTable(scope: Scope): void {
    const old = scope.table;
    const table = new Int32Array(old.length * 2);
    const mask = table.length - 1;
    const i32 = this.#i32;
    const slotMask = this.#slotMask;
    for (let i = 0; i < old.length; i++) {
      const entry = old[i]!;
      if (entry === 0) continue;
      let b = i32[((entry & slotMask) - 1) * I32_STRIDE + KEY]! & mask;
      while (table[b] !== 0) b = (b + 1) & mask;
      table[b] = entry;
    }
    scope.table = table;
    scope.mask = mask;
  }

  /** Appends `slot` to the scope's claim order. */
  #link(scope: Scope, slot: number): void {
    const o = slot * I32_STRIDE;
    this.#i32[o + PREV] = scope.tail;
    this.#i32[o + NEXT] = -1;
    if (scope.tail >= 0) this.#i32[scope.tail * I32_STRIDE + NEXT] = slot;
    else scope.head = slot;
    scope.tail = slot;
  }

  #unlink(scope: Scope, slot: number): void {
    const o = slot * I32_STRIDE;
    const prev = this.#i32[o + PREV]!;
    const next = this.#i32[o + NEXT]!;
    if (prev >= 0) this.#i32[prev * I32_STRIDE + NEXT] = next;
    else scope.head = next;
    if (next >= 0) this.#i32[next * I32_STRIDE + PREV] = prev;
    else scope.tail = prev;
  }

  /** Drops a record of `scope` entirely and frees its slot. */
  #remove(scope: Scope, slot: number): void {
    this.#unindex(scope, slot);
    this.#unlink(scope, slot);
    this.#freeSlot(slot);
  }

  /** Drops expired records at the front of a scope's order. */
  #sweep(scope: Scope, now: number): void {
    let budget = 2 * SWEEP_EVERY;
    while (scope.head >= 0 && budget-- > 0 && this.#expiresAt(scope.head) <= now) {
      this.#remove(scope, scope.head);
      this.#expired++;
    }
  }

  /** Evicts the oldest record: of each scope's front (its oldest claim), the one whose window ends first. */
  #evictOne(now: number): void {
    let victimName: string | undefined;
    let victimScope: Scope | undefined;
    let victimExpiry = 0;
    for (const [name, scope] of this.#scopes) {
      if (scope.head < 0) continue;
      const expiresAt = this.#expiresAt(scope.head);
      if (victimScope === undefined || expiresAt < victimExpiry) {
        victimName = name;
        victimScope = scope;
        victimExpiry = expiresAt;
      }
    }
    if (victimScope === undefined || victimName === undefined) return;
    const slot = victimScope.head;
    const id = this.#ids?.[slot];
    this.#remove(victimScope, slot);
    if (victimScope.count === 0) this.#scopes.delete(victimName);
    if (victimExpiry > now) {
      this.#evictedEarly++;
      if (id !== undefined) this.#onEarlyEviction?.(victimName, id);
    } else {
      this.#expired++;
    }
  }

  // ---- slots ----

  #allocSlot(): number {
    this.#size++;
    const reused = this.#freeHead;
    if (reused >= 0) {
      this.#freeHead = this.#i32[reused * I32_STRIDE + NEXT]!;
      return reused;
    }
    if (this.#allocated === this.#length) this.#grow();
    return this.#allocated++;
  }

  #freeSlot(slot: number): void {
    this.#size--;
    const o = slot * I32_STRIDE;
    if ((this.#i32[o + META]! & HAS_AUX) !== 0) this.#aux.delete(slot);
    if (this.#ids !== undefined) this.#ids[slot] = undefined;
    this.#i32[o + META] = 0;
    this.#i32[o + NEXT] = this.#freeHead;
    this.#freeHead = slot;
  }

  #grow(): void {
    const length = Math.min(this.#capacity, this.#length * 2);
    const f64 = new Float64Array(length * F64_STRIDE);
    f64.set(this.#f64);
    this.#f64 = f64;
    this.#i32 = new Int32Array(f64.buffer);
    if (this.#fpWords !== undefined && this.#fpTails !== undefined) {
      const words = new Int32Array(length * 4);
      words.set(this.#fpWords);
      this.#fpWords = words;
      const tails = new Uint8Array(length);
      tails.set(this.#fpTails);
      this.#fpTails = tails;
    }
    this.#length = length;
  }

  /** Empties the store (construction and close): small buffers, no records, no scopes. */
  #reset(): void {
    this.#length = Math.min(this.#capacity, 1024);
    this.#f64 = new Float64Array(this.#length * F64_STRIDE);
    this.#i32 = new Int32Array(this.#f64.buffer);
    this.#fpWords = undefined;
    this.#fpTails = undefined;
    this.#allocated = 0;
    this.#freeHead = -1;
    this.#size = 0;
    this.#aux = new Map();
    this.#windows = [];
    this.#recentTokens.fill(0);
    this.#recentScopes.fill(undefined);
    this.#recentIds.fill(undefined);
    this.#ids = this.#onEarlyEviction === undefined ? undefined : [];
  }

  #now(): number {
    return this.#clock();
  }
}
