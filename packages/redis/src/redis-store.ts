import {
  InvalidIdError,
  type AdminCountOptions,
  type AdminCounts,
  type AdminListOptions,
  type AdminPage,
  type AdminPurgeResult,
  type AdminPurgeScopeOptions,
  type AdminRecord,
  type AdminStore,
  type ClaimRequest,
  type ClaimResult,
  type CompleteRequest,
  type DedupRecord,
  type DedupStore,
  type ExtendRequest,
  type FailRequest,
  type MarkAdvance,
  type MarkRange,
  type MarkRef,
  type MarkStore,
  type OwnedRef,
  type PositionedClaimRequest,
  type ResetReportingStore,
  type StoreResetEvent,
  type TransitionResult,
} from '@onceonly/core';
import { randomBytes } from 'node:crypto';
import type { ChainableCommander } from 'ioredis';
import { RedisAdmin } from './admin.js';
import { storeUnavailable } from './errors.js';
import { KeyBuilder } from './keys.js';
import { encodeFingerprint, encodeFingerprints } from './record-value.js';
import { decodeClaims, decodeMark, decodeMarkedClaims, decodeMarkedCompletions, decodeRecord, decodeTransition, decodeTransitions } from './replies.js';
import { parseRedisStoreOptions, type RedisStoreClient, type RedisStoreOptions } from './redis-store-options.js';
import { COMMAND_NAMES, registerScripts, type ScriptArg, type ScriptCommand, type ScriptName } from './scripts.js';

type Args = ScriptArg[];
/** Writes one request's script arguments into `args` from `at`. Throws on an invalid request. */
type WriteArgs<T> = (args: Args, at: number, request: T) => void;
/**
 * Appends a batch call's script arguments after its keys (and the epoch candidate): `count` requests,
 * `at(i)` the i-th. Throws on an invalid request.
 */
type WriteCall<T> = (args: Args, count: number, at: (i: number) => T) => void;
/**
 * Decodes one script call's reply into `results` (at `slots`, or in order); `requests` are the whole
 * batch's. A claim answers the scope's epoch (undefined: it wrote one).
 */
type Decode<T, R> = (reply: unknown, results: R[], slots: readonly number[] | undefined, count: number, requests: readonly T[]) => string | undefined | void;

/** What a batch request has in common: the record it addresses. */
interface Keyed {
  readonly scope: string;
  readonly id: string;
}

interface Batch<T, R> {
  readonly operation: string;
  readonly script: ScriptName;
  /**
   * Whether two requests of one scope may go in one script call: the values a call passes once for
   * all its records (a lease, a window) are equal. Undefined: any two may.
   */
  readonly together?: (a: T, b: T) => boolean;
  readonly write: WriteCall<T>;
  readonly decode: Decode<T, R>;
  /** The call checks the scope's epoch: its first key is the epoch key, its first argument the candidate. */
  readonly epoch?: true;
  /** Undoes what the successful calls of a partly failed multi-scope batch did, best effort. */
  readonly undo?: (store: DedupStore, requests: readonly T[], results: readonly (R | undefined)[]) => Promise<void>;
}

/** One script call: the request indices it covers (undefined: all, in order) and its arguments. */
interface Call {
  readonly slots: readonly number[] | undefined;
  readonly scope: string;
  readonly args: Args;
}

// Far beyond any sensible lease or window, and small enough that now + duration stays exact.
const MAX_DURATION_MS = 2 ** 40;
/** Scripts whose replies carry record values (binary): called in their Buffer form. */
const BINARY_REPLIES: ReadonlySet<ScriptName> = new Set(['claim', 'claimMany', 'claimManyMarked', 'get']);
/** Scopes whose epoch a store remembers; beyond it the oldest is forgotten (and its next loss missed). */
const MAX_REMEMBERED_SCOPES = 10_000;

/**
 * The Redis store: shared by every worker, each transition one atomic Lua script, one round trip per
 * call (a batch of one scope, lease and window is one script call).
 *
 * **Keys.** `<prefix>:{<scope>}:<id>`, scope and ID escaped (or hashed when long) so that no input can
 * collide with another or leave its place; keys stay under 330 bytes. The braces are a Redis Cluster
 * hash tag: every ID of one scope lives in one hash slot, so **one scope lives on one shard**. Spread
 * load over shards with more scopes, not more IDs.
 *
 * **Records.** One small string per (scope, ID) (see `./record-value.ts`): state, fencing token,
 * times as small deltas, the fingerprint (22 base64url characters packed into 17 bytes), and the
 * result or error code; a completed record drops the lease. A completed record with no fingerprint or
 * result is often a plain integer. Records written as hashes by version 0.1 (script version 2) are
 * still read, and replaced by strings when next written. In progress (and after a release or an
 * expired lease, as a tombstone that reads as absent) a record is kept for the claim's window, at
 * least the lease, so its fencing token survives and the next claim gets a higher one; completed and
 * failed records are kept for the window from completion. The first token of an ID with no record
 * comes from the server clock in microseconds, so tokens keep growing even after a window ends.
 * Leases are judged by the Redis server clock, so workers with skewed clocks agree. Requires Redis
 * 6.2 or later (scripts run with effect replication, so `TIME` inside them is safe).
 *
 * **Resets.** Every claim call also reads the scope's epoch, `<prefix>:{<scope>}:!epoch` (no expiry,
 * written once by the first claim that finds none). The store remembers the epoch of each scope it
 * claimed in; when the epoch is gone or changed, Redis has forgotten the scope, and the store reports
 * it to its {@link RedisStore.onReset} listeners (the processor's `store-reset` event). See
 * docs/stores.md, "Redis persistence and resets", for what this does and does not catch.
 *
 * **Client.** You create, connect and quit the client; `close()` leaves it open. How long a call waits
 * while Redis is down is decided by the client's options: ioredis queues commands while disconnected
 * and retries them up to `maxRetriesPerRequest` times (default 20). For fail-fast (the call rejects
 * with a retriable `StoreUnavailableError` and the broker redelivers), use a dedicated connection with
 * `enableOfflineQueue: false` and a small `maxRetriesPerRequest`, and connect before use. A BullMQ
 * Worker connection needs `maxRetriesPerRequest: null` (wait forever), so give the store its own
 * connection if you want fail-fast. Auto-pipelining is neither needed nor enabled (the store sends its
 * batches as single script calls); it works on a connection that has it.
 *
 * A `commandTimeout` also fails fast when Redis hangs; a timed-out command may still run on the
 * server. That is safe here: a claim nobody heard of is an expiring lease, and a stale token is fenced.
 *
 * **Errors.** Every Redis or connection error rejects with `StoreUnavailableError` (`retriable: true`,
 * code `STORE_UNAVAILABLE`, the ioredis error as `cause`, no payload in the message). A lost lease is
 * never an error: it is the `'lease-lost'` result. Invalid requests (empty scope or ID, a lease or
 * window that is not a positive number of milliseconds) reject before anything is sent.
 *
 * A batch script that Redis aborts midway (e.g. out of memory) may have applied its first keys; a claim
 * applied that way is a lease nobody holds, which expires.
 *
 * @example
 * import { Redis } from 'ioredis';
 * import { RedisStore } from '@onceonly/redis';
 *
 * // A dedicated connection that fails fast while Redis is down.
 * const client = new Redis(process.env.REDIS_URL!, {
 *   lazyConnect: true,
 *   enableOfflineQueue: false,
 *   maxRetriesPerRequest: 1,
 * });
 * await client.connect();
 * const store = new RedisStore({ client, prefix: 'myapp:dedup' });
 *
 * const claim = await store.claim({ scope: 'emails', id: messageId, leaseMs: 30_000, windowMs: 86_400_000 });
 * if (claim.status === 'acquired') {
 *   await sendEmail();
 *   await store.complete({ scope: 'emails', id: messageId, token: claim.token, windowMs: 86_400_000 });
 * }
 */
export class RedisStore implements DedupStore, MarkStore, AdminStore, ResetReportingStore {
  /** The longest lease or window a request may ask for (ms); the processor checks it at construction. */
  readonly maxDurationMs = MAX_DURATION_MS;
  readonly #client: RedisStoreClient;
  readonly #keys: KeyBuilder;
  readonly #isCluster: boolean;
  readonly #commands: Readonly<Record<ScriptName, ScriptCommand>>;
  #admin: RedisAdmin | undefined;
  /**
   * The epoch this store writes when a scope has none: random, and replaced once written, so every
   * loss leaves another epoch than any a store remembers.
   */
  #epochCandidate = newEpoch();
  /** The epoch seen per scope. */
  readonly #epochs = new Map<string, string>();
  readonly #resetListeners = new Set<(event: StoreResetEvent) => void>();

  /**
   * @throws {InvalidOptionsError} when an option is invalid; the message names it.
   * @example
   * const store = new RedisStore({ client: new Redis(url), prefix: 'orders' });
   */
  constructor(options: RedisStoreOptions) {
    const { client, prefix } = parseRedisStoreOptions(options);
    this.#client = client;
    this.#keys = new KeyBuilder(prefix);
    this.#isCluster = (client as { isCluster?: boolean }).isCluster === true;
    registerScripts(client);
    const methods = client as unknown as Record<string, ScriptCommand>;
    this.#commands = Object.fromEntries(
      Object.entries(COMMAND_NAMES).map(([name, command]) => [name, methods[BINARY_REPLIES.has(name as ScriptName) ? `${command}Buffer` : command]!]),
    ) as Record<ScriptName, ScriptCommand>;
  }

  /** The Redis key of (scope, id): `<prefix>:{<scope part>}:<id part>`. For inspection and tests. */
  keyOf(scope: string, id: string): string {
    return this.#key(scope, id);
  }

  /**
   * Claims (scope, id) in one script call: `acquired` with a fencing token, or the existing record
   * (`completed`, `failed`, `in-progress`). Takes over an in-progress record whose lease has expired
   * (`takeover: true`, next token).
   * @example
   * const result = await store.claim({ scope: 'emails', id, fingerprint, leaseMs: 30_000, windowMs: 86_400_000 });
   * if (result.status === 'completed') return result.record.result; // a duplicate
   */
  async claim(request: ClaimRequest): Promise<ClaimResult> {
    const candidate = this.#epochCandidate;
    const args: Args = [this.#epochKey(request.scope), this.#key(request.scope, request.id), candidate, 0, 0, 0];
    writeClaim(args, 3, request);
    const results: ClaimResult[] = [];
    let epoch: string | undefined;
    await this.#call('claim', 'claim', args, (reply) => {
      epoch = decodeClaims(reply, results, undefined, 1, () => args[3] as number);
    });
    this.#sawEpoch(request.scope, epoch, candidate);
    return results[0]!;
  }

  /**
   * Claims a batch in one round trip; answers are in request order. Requests of one scope, lease and
   * window go out as one script call; a batch that mixes them as one call per scope, lease and window
   * (pipelined; concurrent on a cluster). If such a batch fails for one call, what the other calls
   * acquired is released before the `StoreUnavailableError` is thrown.
   * @example
   * const results = await store.claimMany(messages.map((m) => ({ scope: 'orders', id: m.id, leaseMs, windowMs })));
   */
  async claimMany(requests: readonly ClaimRequest[]): Promise<ClaimResult[]> {
    return this.#batch(requests, CLAIM_BATCH);
  }

  /** Extends the lease to now + `leaseMs` (server clock; never shortens it). `lease-lost` for a stale token. */
  async extend(request: ExtendRequest): Promise<TransitionResult> {
    const args: Args = [this.#key(request.scope, request.id), 0, 0];
    writeExtend(args, 1, request);
    return this.#transition('extend', 'extend', args);
  }

  /** {@link RedisStore.extend} for a batch, in one round trip. */
  async extendMany(requests: readonly ExtendRequest[]): Promise<TransitionResult[]> {
    return this.#batch(requests, EXTEND_BATCH);
  }

  /**
   * Marks the claim completed (with `result`, when given) and keeps it `windowMs` from now.
   * `lease-lost` when another claim has taken the ID since: nothing is written then.
   * @example
   * const outcome = await store.complete({ scope: 'emails', id, token: claim.token, result: '"sent"', windowMs });
   * if (outcome === 'lease-lost') metrics.leaseLost.inc();
   */
  async complete(request: CompleteRequest): Promise<TransitionResult> {
    const args: Args = [this.#key(request.scope, request.id), 0, 0, 0, 0];
    writeComplete(args, 1, request);
    return this.#transition('complete', 'complete', args);
  }

  /** {@link RedisStore.complete} for a batch, in one round trip. */
  async completeMany(requests: readonly CompleteRequest[]): Promise<TransitionResult[]> {
    return this.#batch(requests, COMPLETE_BATCH);
  }

  /** Gives the ID back (retryable failure): it reads as absent, and its token is kept for the next claim. */
  async release(request: OwnedRef): Promise<TransitionResult> {
    return this.#transition('release', 'release', [this.#key(request.scope, request.id), request.token]);
  }

  /** {@link RedisStore.release} for a batch, in one round trip. */
  async releaseMany(requests: readonly OwnedRef[]): Promise<TransitionResult[]> {
    return this.#batch(requests, RELEASE_BATCH);
  }

  /** Records a terminal failure (`error` is a code, never a message) and keeps it `windowMs` from now. */
  async fail(request: FailRequest): Promise<TransitionResult> {
    const args: Args = [this.#key(request.scope, request.id), 0, 0, 0];
    writeFail(args, 1, request);
    return this.#transition('fail', 'fail', args);
  }

  /** Reads a record; absent, released and expired-lease records read as `undefined` (server clock). */
  async get(scope: string, id: string): Promise<DedupRecord | undefined> {
    let record: DedupRecord | undefined;
    await this.#call('get', 'get', [this.#key(scope, id)], (reply) => {
      record = reply === null || reply === false ? undefined : decodeRecord(reply);
    });
    return record;
  }

  /**
   * Reads the offset high-water mark `<prefix>:{<scope>}:hwm:<name>` and claims every request whose
   * position lies outside it, in one script call (the mark shares the scope's hash slot).
   * @throws {TypeError} unless every request has the mark's scope and the same `leaseMs` and `windowMs`
   * (one script call passes them once; the processor's batches always do).
   */
  async claimManyMarked(
    mark: MarkRef,
    requests: readonly PositionedClaimRequest[],
    skipMarked: boolean,
  ): Promise<{ mark: MarkRange | undefined; claims: (ClaimResult | undefined)[] }> {
    const markKey = this.#markKey(mark);
    const count = requests.length;
    const candidate = this.#epochCandidate;
    const args: Args = [2 + count, markKey, this.#epochKey(mark.scope)];
    for (const request of requests) args.push(this.#key(mark.scope, sameCall(mark, requests[0]!, request, true).id));
    args.push(skipMarked ? '1' : '0', candidate);
    if (count === 0) args.push(0, 0, '');
    else writeClaims(args, count, (i) => requests[i]!);
    for (const request of requests) args.push(position(request.position));
    let answer: ReturnType<typeof decodeMarkedClaims> | undefined;
    await this.#call('claimManyMarked', 'claimManyMarked', args, (reply) => {
      answer = decodeMarkedClaims(reply, requests.length, (i) => duration(requests[i]!.leaseMs, 'leaseMs'));
    });
    this.#sawEpoch(mark.scope, answer!.epoch, candidate);
    return { mark: answer!.mark, claims: answer!.claims };
  }

  /**
   * Completes the requests and, if all succeed, advances the mark over `advance`, in one script call.
   * @throws {TypeError} unless every request has the mark's scope and the same `windowMs`.
   */
  async completeManyMarked(
    mark: MarkRef,
    requests: readonly CompleteRequest[],
    advance: MarkAdvance | undefined,
  ): Promise<{ results: TransitionResult[]; mark: MarkRange | undefined }> {
    const count = requests.length;
    const args: Args = [1 + count, this.#markKey(mark)];
    for (const request of requests) args.push(this.#key(mark.scope, sameCall(mark, requests[0]!, request, false).id));
    args.push(advance ? '1' : '0', advance ? position(advance.from) : 0, advance ? position(advance.to) : 0);
    if (advance && advance.to < advance.from) throw new RangeError('RedisStore: a mark advance needs from <= to');
    if (count === 0) args.push(0, '');
    else writeCompletions(args, count, (i) => requests[i]!);
    let answer: { results: TransitionResult[]; mark: MarkRange | undefined } | undefined;
    await this.#call('completeManyMarked', 'completeManyMarked', args, (reply) => {
      answer = decodeMarkedCompletions(reply, requests.length);
    });
    return answer!;
  }

  /** Reads a mark (one HMGET). */
  async getMark(mark: MarkRef): Promise<MarkRange | undefined> {
    const key = this.#markKey(mark);
    let range: MarkRange | undefined;
    await this.#call('getMark', undefined, [], async () => {
      const [low, high] = await this.#client.hmget(key, 'l', 'h');
      range = decodeMark([low === null || low === undefined ? null : Number(low), high === null || high === undefined ? null : Number(high)], 0);
    });
    return range;
  }

  /** Removes a mark (one DEL). */
  async deleteMark(mark: MarkRef): Promise<void> {
    const key = this.#markKey(mark);
    await this.#call('deleteMark', undefined, [], async () => {
      await this.#client.del(key);
    });
  }

  /**
   * Subscribes to resets: Redis forgot a scope this store had claimed in (see {@link StoreResetEvent}).
   * The listener runs synchronously in the claim call that noticed, once per loss and scope; a
   * listener that throws is ignored. Returns a function that unsubscribes.
   * @example
   * store.onReset(({ scope, reason }) => alert(`Redis forgot scope ${scope} (${reason})`));
   */
  onReset(listener: (event: StoreResetEvent) => void): () => void {
    this.#resetListeners.add(listener);
    return () => this.#resetListeners.delete(listener);
  }

  /** The Redis key of a scope's epoch: `<prefix>:{<scope part>}:!epoch`. For inspection and tests. */
  epochKeyOf(scope: string): string {
    return this.#epochKey(scope);
  }

  /** The Redis key of a mark: `<prefix>:{<scope part>}:hwm:<name part>`. For inspection and tests. */
  markKeyOf(mark: MarkRef): string {
    return this.#markKey(mark);
  }

  #markKey(mark: MarkRef): string {
    if (typeof mark?.scope !== 'string' || mark.scope.length === 0) throw new TypeError('RedisStore: mark scope must be a non-empty string');
    if (typeof mark.name !== 'string' || mark.name.length === 0) throw new TypeError('RedisStore: mark name must be a non-empty string');
    return this.#keys.markKey(mark.scope, mark.name);
  }

  /**
   * False while the client's connection is not ready (connecting, reconnecting, closed): a batch then
   * stops before running more handlers whose completions could not be recorded.
   */
  isAvailable(): boolean {
    return this.#client.status === 'ready';
  }

  /** {@link AdminStore.inspect}: operator tool, not on the hot path (see `./admin.ts`). */
  inspect(scope: string, id: string): Promise<AdminRecord | undefined> {
    return this.#adminOps().inspect(scope, id);
  }

  /** {@link AdminStore.list}: `SCAN` over the scope's hash slot. IDs hashed into their key have no `id`. */
  list(scope: string, options?: AdminListOptions): Promise<AdminPage> {
    return this.#adminOps().list(scope, options);
  }

  /** {@link AdminStore.purge}: one `UNLINK`. */
  purge(scope: string, id: string): Promise<boolean> {
    return this.#adminOps().purge(scope, id);
  }

  /** {@link AdminStore.purgeScope}: `SCAN` and `UNLINK` in batches over the scope's hash slot. */
  purgeScope(scope: string, options?: AdminPurgeScopeOptions): Promise<AdminPurgeResult> {
    return this.#adminOps().purgeScope(scope, options);
  }

  /** {@link AdminStore.countByState}: one `SCAN` pass over the scope's hash slot. */
  countByState(scope: string, options?: AdminCountOptions): Promise<AdminCounts> {
    return this.#adminOps().countByState(scope, options);
  }

  #adminOps(): RedisAdmin {
    return (this.#admin ??= new RedisAdmin(this.#client, this.#keys, (scope, id) => this.#key(scope, id)));
  }

  /** Does nothing: the client is yours to quit. Provided for the store contract. */
  async close(): Promise<void> {}

  #epochKey(scope: string): string {
    if (typeof scope !== 'string' || scope.length === 0) throw new TypeError('RedisStore: scope must be a non-empty string');
    return this.#keys.epochKey(scope);
  }

  /**
   * Records the epoch a claim call found for `scope`; `found` undefined: the call wrote `candidate`
   * (the scope had none), which is then replaced for later calls.
   */
  #sawEpoch(scope: string, found: string | undefined, candidate: string): void {
    if (found === undefined && this.#epochCandidate === candidate) this.#epochCandidate = newEpoch();
    const epoch = found ?? candidate;
    const previous = this.#epochs.get(scope);
    if (previous === epoch) return;
    if (previous === undefined && this.#epochs.size >= MAX_REMEMBERED_SCOPES) this.#epochs.delete(this.#epochs.keys().next().value!);
    this.#epochs.set(scope, epoch);
    if (previous === undefined) return;
    const event: StoreResetEvent = { scope, reason: found === undefined ? 'missing' : 'changed', previousEpoch: previous, epoch };
    for (const listener of this.#resetListeners) {
      try {
        listener(event);
      } catch {
        // A listener's failure must not fail the claim.
      }
    }
  }

  #key(scope: string, id: string): string {
    if (typeof scope !== 'string' || scope.length === 0) {
      throw new TypeError('RedisStore: scope must be a non-empty string');
    }
    if (typeof id !== 'string') throw new InvalidIdError('ID_INVALID', 'message ID must be a string');
    if (id.length === 0) throw new InvalidIdError('ID_MISSING', 'message ID is empty');
    return this.#keys.key(scope, id);
  }

  async #transition(operation: string, script: ScriptName, args: Args): Promise<TransitionResult> {
    let result: TransitionResult = 'lease-lost';
    await this.#call(operation, script, args, (reply) => {
      result = decodeTransition(reply);
    });
    return result;
  }

  /** Runs one script call; any failure, including a reply that cannot be decoded, is store-unavailable. */
  async #call(operation: string, script: ScriptName | undefined, args: Args, decode: (reply: unknown) => void | Promise<void>): Promise<void> {
    try {
      await decode(script === undefined ? undefined : await this.#commands[script].apply(this.#client, args));
    } catch (error) {
      throw storeUnavailable(operation, error);
    }
  }

  /**
   * One script call per group of the batch (see {@link #plan}; usually one). Several calls go out
   * together: in one pipeline on a standalone server (still one round trip), concurrently on a cluster
   * (their slots may live on different nodes). Every request is validated before anything is sent.
   */
  async #batch<T extends Keyed, R>(requests: readonly T[], batch: Batch<T, R>): Promise<R[]> {
    const count = requests.length;
    const results = new Array<R>(count);
    if (count === 0) return results;
    const candidate = this.#epochCandidate; // the one #plan writes into every call
    const calls = this.#plan(requests, batch);
    if (calls.length === 1) {
      const { args, scope } = calls[0]!;
      let epoch: string | undefined | void;
      try {
        epoch = batch.decode(await this.#commands[batch.script].apply(this.#client, args), results, undefined, count, requests);
      } catch (error) {
        throw storeUnavailable(batch.operation, error);
      }
      if (batch.epoch) this.#sawEpoch(scope, epoch ?? undefined, candidate);
      return results;
    }
    const settled = await this.#sendAll(batch.script, calls);
    let failure: unknown;
    for (let c = 0; c < calls.length; c++) {
      const { slots, scope } = calls[c]!;
      const outcome = settled[c]!;
      if (outcome.error !== undefined) {
        failure ??= outcome.error;
        continue;
      }
      try {
        const epoch = batch.decode(outcome.reply, results, slots, slots!.length, requests);
        if (batch.epoch) this.#sawEpoch(scope, epoch ?? undefined, candidate);
      } catch (error) {
        failure ??= error;
      }
    }
    if (failure !== undefined) {
      await batch.undo?.(this, requests, results).catch(() => undefined);
      throw storeUnavailable(batch.operation, failure);
    }
    return results;
  }

  /**
   * Groups requests by scope (all keys of one script call must share a hash slot) and by what a call
   * passes once for all its records (`batch.together`), and builds the arguments.
   */
  #plan<T extends Keyed, R>(requests: readonly T[], batch: Batch<T, R>): Call[] {
    const count = requests.length;
    const first = requests[0]!;
    const together = batch.together;
    let one = true;
    for (let i = 1; i < count; i++) {
      const request = requests[i]!;
      if (request.scope !== first.scope || (together !== undefined && !together(first, request))) {
        one = false;
        break;
      }
    }
    if (one) return [{ slots: undefined, scope: first.scope, args: this.#args(requests, undefined, batch) }];
    const groups = new Map<string, { readonly first: T; readonly slots: number[] }[]>();
    for (let i = 0; i < count; i++) {
      const request = requests[i]!;
      let ofScope = groups.get(request.scope);
      if (ofScope === undefined) groups.set(request.scope, (ofScope = []));
      const group = ofScope.find((g) => together === undefined || together(g.first, request));
      if (group) group.slots.push(i);
      else ofScope.push({ first: request, slots: [i] });
    }
    const calls: Call[] = [];
    for (const [scope, ofScope] of groups) for (const { slots } of ofScope) calls.push({ slots, scope, args: this.#args(requests, slots, batch) });
    return calls;
  }

  /**
   * `numkeys, key1..keyN`, then what `batch.write` appends; with `batch.epoch`, the scope's epoch key
   * comes first among the keys and the epoch candidate first among the arguments.
   */
  #args<T extends Keyed, R>(requests: readonly T[], slots: readonly number[] | undefined, batch: Batch<T, R>): Args {
    const count = slots === undefined ? requests.length : slots.length;
    const at = slots === undefined ? (i: number) => requests[i]! : (i: number) => requests[slots[i]!]!;
    const args: Args = [batch.epoch ? count + 1 : count];
    if (batch.epoch) args.push(this.#epochKey(at(0).scope));
    for (let i = 0; i < count; i++) {
      const request = at(i);
      args.push(this.#key(request.scope, request.id));
    }
    if (batch.epoch) args.push(this.#epochCandidate);
    batch.write(args, count, at);
    return args;
  }

  async #sendAll(script: ScriptName, calls: readonly Call[]): Promise<{ reply?: unknown; error?: unknown }[]> {
    const command = this.#commands[script];
    if (this.#isCluster) {
      return Promise.all(
        calls.map(({ args }) =>
          command.apply(this.#client, args).then(
            (reply) => ({ reply }),
            (error: unknown) => ({ error: error ?? new Error('unknown error') }),
          ),
        ),
      );
    }
    const pipeline = this.#client.pipeline() as ChainableCommander;
    for (const { args } of calls) command.apply(pipeline, args);
    let replies: [error: Error | null, reply: unknown][] | null;
    try {
      replies = await pipeline.exec();
    } catch (error) {
      return calls.map(() => ({ error }));
    }
    if (replies === null) return calls.map(() => ({ error: new Error('pipeline was discarded') }));
    return replies.map(([error, reply]) => (error ? { error } : { reply }));
  }
}

/** A new random epoch: 12 base64url characters (72 bits). */
function newEpoch(): string {
  return randomBytes(9).toString('base64url');
}

/**
 * A mark and its records share one hash slot only when they share the scope; a marked batch is one
 * script call, which passes the lease and the window once for all its records.
 */
function sameCall<T extends { scope: string; windowMs: number; leaseMs?: number }>(mark: MarkRef, first: T, request: T, lease: boolean): T {
  if (request.scope !== mark.scope) throw new TypeError('RedisStore: every request of a marked batch must have the mark\'s scope');
  if (request.windowMs !== first.windowMs || (lease && request.leaseMs !== first.leaseMs)) {
    throw new TypeError(`RedisStore: every request of a marked batch must have the same ${lease ? 'leaseMs and windowMs' : 'windowMs'}`);
  }
  return request;
}

function position(value: number): number {
  if (Number.isSafeInteger(value) && value >= 0) return value;
  throw new RangeError(`RedisStore: a mark position must be a non-negative safe integer, got ${String(value)}`);
}

function duration(value: number, name: string): number {
  if (typeof value === 'number' && value > 0 && value <= MAX_DURATION_MS) {
    // Redis takes whole milliseconds; rounding up never shortens a lease or a window.
    return Number.isInteger(value) ? value : Math.ceil(value);
  }
  throw new RangeError(`RedisStore: ${name} must be a positive number of milliseconds, got ${String(value)}`);
}

const writeClaim: WriteArgs<ClaimRequest> = (args, at, request) => {
  args[at] = duration(request.leaseMs, 'leaseMs');
  args[at + 1] = duration(request.windowMs, 'windowMs');
  const fingerprint = request.fingerprint;
  if (fingerprint !== undefined && typeof fingerprint !== 'string') throw new TypeError('RedisStore: a fingerprint must be a string');
  args[at + 2] = encodeFingerprint(fingerprint);
};

const writeExtend: WriteArgs<ExtendRequest> = (args, at, request) => {
  args[at] = request.token;
  args[at + 1] = duration(request.leaseMs, 'leaseMs');
};

const writeComplete: WriteArgs<CompleteRequest> = (args, at, request) => {
  args[at] = request.token;
  args[at + 1] = duration(request.windowMs, 'windowMs');
  const result = request.result;
  args[at + 2] = result === undefined ? '0' : '1';
  args[at + 3] = result ?? '';
};

const writeFail: WriteArgs<FailRequest> = (args, at, request) => {
  args[at] = request.token;
  args[at + 1] = duration(request.windowMs, 'windowMs');
  args[at + 2] = request.error;
};

/** Claims of one call: the lease and the window once (see `together`), then every fingerprint in one argument. */
const writeClaims: WriteCall<ClaimRequest> = (args, count, at) => {
  const first = at(0);
  args.push(duration(first.leaseMs, 'leaseMs'), duration(first.windowMs, 'windowMs'), encodeFingerprints(count, (i) => at(i).fingerprint));
};

/** Completions of one call: the window once, which records carry a result, the tokens, then the results given. */
const writeCompletions: WriteCall<CompleteRequest> = (args, count, at) => {
  args.push(duration(at(0).windowMs, 'windowMs'), '');
  const given = args.length - 1;
  let withResult = 0;
  for (let i = 0; i < count; i++) {
    const request = at(i);
    args.push(request.token);
    if (request.result !== undefined) withResult++;
  }
  if (withResult === 0) return;
  let flags = '';
  for (let i = 0; i < count; i++) {
    const result = at(i).result;
    flags += result === undefined ? '0' : '1';
    if (result !== undefined) args.push(result);
  }
  args[given] = flags;
};

const writeExtends: WriteCall<ExtendRequest> = (args, count, at) => {
  for (let i = 0; i < count; i++) {
    const request = at(i);
    args.push(request.token, duration(request.leaseMs, 'leaseMs'));
  }
};

const writeReleases: WriteCall<OwnedRef> = (args, count, at) => {
  for (let i = 0; i < count; i++) args.push(at(i).token);
};

/** After a partly failed multi-scope claim, gives back what was acquired (else it expires with its lease). */
async function releaseAcquired(
  store: DedupStore,
  requests: readonly ClaimRequest[],
  results: readonly (ClaimResult | undefined)[],
): Promise<void> {
  const acquired: OwnedRef[] = [];
  for (let i = 0; i < requests.length; i++) {
    const result = results[i];
    if (result?.status === 'acquired') acquired.push({ scope: requests[i]!.scope, id: requests[i]!.id, token: result.token });
  }
  if (acquired.length > 0) await store.releaseMany(acquired);
}

const CLAIM_BATCH: Batch<ClaimRequest, ClaimResult> = {
  operation: 'claimMany',
  script: 'claimMany',
  epoch: true,
  together: (a, b) => a.leaseMs === b.leaseMs && a.windowMs === b.windowMs,
  write: writeClaims,
  decode: (reply, results, slots, count, requests) =>
    decodeClaims(reply, results, slots, count, (i) => duration(requests[slots === undefined ? i : slots[i]!]!.leaseMs, 'leaseMs')),
  undo: releaseAcquired,
};
const EXTEND_BATCH: Batch<ExtendRequest, TransitionResult> = {
  operation: 'extendMany',
  script: 'extendMany',
  write: writeExtends,
  decode: decodeTransitions,
};
const COMPLETE_BATCH: Batch<CompleteRequest, TransitionResult> = {
  operation: 'completeMany',
  script: 'completeMany',
  together: (a, b) => a.windowMs === b.windowMs,
  write: writeCompletions,
  decode: decodeTransitions,
};
const RELEASE_BATCH: Batch<OwnedRef, TransitionResult> = {
  operation: 'releaseMany',
  script: 'releaseMany',
  write: writeReleases,
  decode: decodeTransitions,
};
