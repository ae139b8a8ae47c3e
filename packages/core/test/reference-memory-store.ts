// The memory store as it was before issue 13 (a Map per scope holding the ID strings), kept unchanged as a
// test oracle: memory-store-model.test.ts runs random operations on it and on MemoryStore and expects the
// same answers. Not exported; not used outside tests.
import { advanceMark } from '@onceonly/core';
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
} from '@onceonly/core';

interface MemoryStoreOptions {
  /**
   * Most records kept at once. When full, the oldest record (the first to expire) is evicted; evicting one
   * whose window has not ended weakens the promise and is counted in `stats().evictedEarly`.
   * @defaultValue 1_000_000
   */
  capacity?: number;
  /** Milliseconds since the epoch. Tests pass a fake clock. @defaultValue Date.now */
  clock?: () => number;
  /** Called for every record evicted before its window ended. */
  onEarlyEviction?: (scope: string, id: string) => void;
}

interface MemoryStoreStats {
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

/** Fingerprint and result/error of a record, kept only when present (most records have neither). */
type Aux = string | { fingerprint: string | undefined; extra: string };

/**
 * The embedded default store: one process, bounded, no timers.
 *
 * Each scope keeps a `Map` from ID to a slot in typed-array columns (about 75 bytes a record besides the
 * ID string), in order of claim. With one window per scope the front is the next to expire, give or
 * take the time a handler ran, and claims sweep it. Reads check expiry themselves, so a record past its
 * window never answers, swept or not.
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
export class ReferenceMemoryStore implements DedupStore, MarkStore {
  readonly #capacity: number;
  readonly #clock: () => number;
  readonly #onEarlyEviction: ((scope: string, id: string) => void) | undefined;
  readonly #scopes = new Map<string, Map<string, number>>();
  /** Offset high-water marks by scope, then name. Not windowed: one small entry per partition. */
  readonly #marks = new Map<string, Map<string, MarkRange>>();

  #tokenCounter = 0;
  #claimsUntilSweep = SWEEP_EVERY;
  #size = 0;
  #evictedEarly = 0;
  #expired = 0;

  // Columns indexed by slot. `#leaseOrClaim` holds the lease end while in progress (when the claim time
  // equals `#updatedAt`), and the claim time once finished (when there is no lease). Times are float64
  // epoch milliseconds: exact for any window or lease, with nothing to overflow or rebase.
  #state: Uint8Array;
  /** 1 when an owner may have run the handler (the claim was a takeover): kept until a completion or failure. */
  #suspect: Uint8Array;
  #token: Float64Array;
  #updatedAt: Float64Array;
  #leaseOrClaim: Float64Array;
  #expiresAt: Float64Array;
  #aux: (Aux | undefined)[] = []; // fingerprint, or fingerprint + result (completed) / error (failed)
  #free: number[] = [];
  #allocated = 0;

  constructor(options: MemoryStoreOptions = {}) {
    const capacity = options.capacity ?? 1_000_000;
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`MemoryStore option "capacity" must be a positive integer, got ${String(capacity)}`);
    }
    this.#capacity = capacity;
    this.#clock = options.clock ?? Date.now;
    this.#onEarlyEviction = options.onEarlyEviction;
    const initial = Math.min(capacity, 1024);
    this.#state = new Uint8Array(initial);
    this.#suspect = new Uint8Array(initial);
    this.#token = new Float64Array(initial);
    this.#updatedAt = new Float64Array(initial);
    this.#leaseOrClaim = new Float64Array(initial);
    this.#expiresAt = new Float64Array(initial);
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
    const slot = this.#scopes.get(scope)?.get(id);
    if (slot === undefined) return undefined;
    const now = this.#now();
    if (this.#expiresAt[slot]! <= now) return undefined;
    const state = this.#state[slot];
    if (state === RELEASED_SUSPECT || (state === IN_PROGRESS && this.#leaseOrClaim[slot]! <= now)) return undefined;
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
    this.#free = [];
    this.#allocated = 0;
    this.#size = 0;
  }

  #claim(request: ClaimRequest, now: number): ClaimResult {
    const table = this.#table(request.scope);
    const slot = table.get(request.id);
    let takeover = false;
    if (slot !== undefined) {
      if (this.#expiresAt[slot]! > now) {
        const state = this.#state[slot]!;
        if (state === COMPLETED || state === FAILED) {
          return { status: state === COMPLETED ? 'completed' : 'failed', record: this.#record(slot) };
        }
        if (state === IN_PROGRESS && this.#leaseOrClaim[slot]! > now) return { status: 'in-progress', record: this.#record(slot) };
        // An expired lease: its owner may have run the handler. A suspect release: an earlier one may have.
        takeover = state === IN_PROGRESS || this.#suspect[slot] === 1;
      }
      table.delete(request.id);
      this.#freeSlot(slot);
    }
    if (--this.#claimsUntilSweep === 0) {
      this.#claimsUntilSweep = SWEEP_EVERY;
      this.#sweep(table, now);
    }
    if (this.#size >= this.#capacity) this.#evictOne(now);

    const fresh = this.#allocSlot();
    const token = ++this.#tokenCounter;
    const leaseUntil = now + request.leaseMs;
    this.#state[fresh] = IN_PROGRESS;
    this.#suspect[fresh] = takeover ? 1 : 0;
    this.#token[fresh] = token;
    this.#updatedAt[fresh] = now;
    this.#leaseOrClaim[fresh] = leaseUntil;
    this.#expiresAt[fresh] = now + Math.max(request.windowMs, request.leaseMs);
    this.#aux[fresh] = request.fingerprint;
    // Eviction may have dropped this scope's (emptied) table: look it up again.
    this.#table(request.scope).set(request.id, fresh);
    return { status: 'acquired', token, takeover, leaseUntil };
  }

  #owned(ref: OwnedRef): { table: Map<string, number>; slot: number } | undefined {
    const table = this.#scopes.get(ref.scope);
    const slot = table?.get(ref.id);
    if (slot === undefined || this.#state[slot] !== IN_PROGRESS || this.#token[slot] !== ref.token) return undefined;
    return { table: table!, slot };
  }

  #extend(request: ExtendRequest, now: number): TransitionResult {
    const owned = this.#owned(request);
    if (!owned) return 'lease-lost';
    // An expired lease that nobody took over is still this owner's: no other claim bumped the token.
    this.#leaseOrClaim[owned.slot] = Math.max(this.#leaseOrClaim[owned.slot]!, now + request.leaseMs);
    this.#expiresAt[owned.slot] = Math.max(this.#expiresAt[owned.slot]!, now + request.leaseMs);
    return 'ok';
  }

  #finish(ref: OwnedRef & { windowMs: number }, state: number, extra: string | undefined, now: number): TransitionResult {
    const owned = this.#owned(ref);
    if (!owned) return 'lease-lost';
    const { slot } = owned;
    this.#state[slot] = state;
    this.#suspect[slot] = 0;
    this.#leaseOrClaim[slot] = this.#updatedAt[slot]!; // the claim time
    this.#updatedAt[slot] = now;
    this.#expiresAt[slot] = now + ref.windowMs;
    if (extra !== undefined) this.#aux[slot] = { fingerprint: fingerprintOf(this.#aux[slot]), extra };
    return 'ok';
  }

  #release(ref: OwnedRef): TransitionResult {
    const owned = this.#owned(ref);
    if (!owned) return 'lease-lost';
    if (this.#suspect[owned.slot] === 1) {
      // Kept (until the claim's retention ends) so the next claim is still reported as a takeover.
      this.#state[owned.slot] = RELEASED_SUSPECT;
      return 'ok';
    }
    owned.table.delete(ref.id);
    this.#freeSlot(owned.slot);
    return 'ok';
  }

  #record(slot: number): DedupRecord {
    const state = this.#state[slot]!;
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
      token: this.#token[slot]!,
      claimedAt: state === IN_PROGRESS ? this.#updatedAt[slot]! : this.#leaseOrClaim[slot]!,
      updatedAt: this.#updatedAt[slot]!,
    };
    const aux = this.#aux[slot];
    const fingerprint = fingerprintOf(aux);
    if (fingerprint !== undefined) record.fingerprint = fingerprint;
    if (state === IN_PROGRESS) record.leaseUntil = this.#leaseOrClaim[slot]!;
    if (typeof aux === 'object') {
      if (state === COMPLETED) record.result = aux.extra;
      else record.error = aux.extra;
    }
    return record;
  }

  #table(scope: string): Map<string, number> {
    let table = this.#scopes.get(scope);
    if (!table) {
      table = new Map();
      this.#scopes.set(scope, table);
    }
    return table;
  }

  /** Drops expired records at the front of a scope's order. */
  #sweep(table: Map<string, number>, now: number): void {
    let budget = 2 * SWEEP_EVERY;
    for (const [id, slot] of table) {
      if (budget-- === 0 || this.#expiresAt[slot]! > now) break;
      table.delete(id);
      this.#freeSlot(slot);
      this.#expired++;
    }
  }

  /** Evicts the oldest record: of each scope's front (its oldest claim), the one whose window ends first. */
  #evictOne(now: number): void {
    let victimScope: string | undefined;
    let victimTable: Map<string, number> | undefined;
    let victimId = '';
    let victimSlot = -1;
    for (const [scope, table] of this.#scopes) {
      for (const [id, slot] of table) {
        if (victimSlot < 0 || this.#expiresAt[slot]! < this.#expiresAt[victimSlot]!) {
          victimScope = scope;
          victimTable = table;
          victimId = id;
          victimSlot = slot;
        }
        break;
      }
    }
    if (!victimTable || victimScope === undefined) return;
    victimTable.delete(victimId);
    if (victimTable.size === 0) this.#scopes.delete(victimScope);
    if (this.#expiresAt[victimSlot]! > now) {
      this.#evictedEarly++;
      this.#onEarlyEviction?.(victimScope, victimId);
    } else {
      this.#expired++;
    }
    this.#freeSlot(victimSlot);
  }

  #allocSlot(): number {
    this.#size++;
    const reused = this.#free.pop();
    if (reused !== undefined) return reused;
    if (this.#allocated === this.#state.length) this.#grow();
    return this.#allocated++;
  }

  #freeSlot(slot: number): void {
    this.#size--;
    this.#state[slot] = 0;
    this.#suspect[slot] = 0;
    this.#aux[slot] = undefined;
    this.#free.push(slot);
  }

  #grow(): void {
    const length = Math.min(this.#capacity, this.#state.length * 2);
    const grow = <T extends Uint8Array | Float64Array>(old: T, make: (n: number) => T): T => {
      const next = make(length);
      next.set(old);
      return next;
    };
    this.#state = grow(this.#state, (n) => new Uint8Array(n));
    this.#suspect = grow(this.#suspect, (n) => new Uint8Array(n));
    this.#token = grow(this.#token, (n) => new Float64Array(n));
    this.#updatedAt = grow(this.#updatedAt, (n) => new Float64Array(n));
    this.#leaseOrClaim = grow(this.#leaseOrClaim, (n) => new Float64Array(n));
    this.#expiresAt = grow(this.#expiresAt, (n) => new Float64Array(n));
  }

  #now(): number {
    return this.#clock();
  }
}

function fingerprintOf(aux: Aux | undefined): string | undefined {
  return typeof aux === 'object' ? aux.fingerprint : aux;
}
