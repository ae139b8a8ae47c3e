import { InvalidOptionsError, OnceOnlyError, StoreUnavailableError, toError, type InvalidIdError } from '../errors.js';
import { supportsMarks, type ClaimResult, type CompleteRequest, type MarkAdvance, type MarkRange, type MarkRef, type MarkStore, type TransitionResult } from '../store/store.js';
import type { Message } from './context.js';
import type { MessageTrace } from './instrumentation.js';
import type { AnyHandler, BatchHost, Prepared } from './internal.js';
import type { KeptLease } from './lease-keeper.js';
import { isDone, type BatchResult, type DeadLetteredOutcome, type FailedOutcome, type Outcome } from './outcome.js';

/** A message of a batch: an optional ordering `key` besides its ID and payload. */
export interface BatchMessage<P = unknown> extends Message<P> {
  /**
   * With `ordering: 'key'`, messages with the same key run one after another, in batch order (Kafka:
   * the message key). Messages without a key are not ordered among themselves.
   */
  readonly key?: string | null;
  /**
   * Set by an adapter that could not read the message's ID (a malformed header, say): the message is
   * invalid with this error, whatever `id` holds.
   */
  readonly idError?: InvalidIdError;
  /** Where the message came from (topic, partition, offset, …), carried into `poisoned` events for logs. */
  readonly where?: Readonly<Record<string, string | number>>;
}

/** An offset high-water mark for the batch: one position per message, in order (see `processBatch`). */
export interface BatchMark {
  readonly ref: MarkRef;
  readonly positions: readonly number[];
  readonly skip: boolean;
  readonly from?: number;
}

/** What the dead-letter hook is told about a message that can never succeed. */
export interface PoisonInfo {
  /** Why it cannot succeed: the typed error of its outcome (bad ID, conflict, terminal error, ...). */
  readonly error: Error;
  /** Handler runs this delivery made for it (0 when it never ran). */
  readonly attempts: number;
  readonly outcome: Outcome<unknown>;
}

/** Options of `processBatch`. */
export interface BatchOptions<P = unknown> {
  /** Checked before each message is started; false (e.g. the batch went stale after a rebalance) stops starting more. */
  readonly shouldContinue?: () => boolean;
  /** An offset high-water mark read with the claims and advanced with the completions (stores with marks). */
  readonly mark?: BatchMark;
  /** Handlers running at once. @defaultValue 1 (one after another, in order) */
  readonly concurrency?: number;
  /**
   * With `concurrency` > 1: `'key'` runs messages with the same `key` in order and different keys in
   * parallel; `'none'` runs any message as soon as a slot is free. Done messages are acknowledged over
   * the contiguous prefix only, whatever the order they finish in. @defaultValue 'key'
   */
  readonly ordering?: 'key' | 'none';
  /** Most messages claimed in one store round trip; the next chunk is claimed when reached. @defaultValue the whole batch */
  readonly claimChunk?: number;
  /**
   * Completions are sent as handlers finish, coalesced: a flush goes out when `maxPending` are waiting
   * or the oldest has waited `maxDelayMs`, one flush at a time; a batch of up to `maxPending` fast
   * messages still completes in one round trip. While `maxPending` completions wait behind a flush, no
   * handler starts, so a crash re-runs at most the running handlers plus the completions not yet
   * acknowledged: fewer than `concurrency` + 2 × `maxPending`, whatever the batch or claim chunk size.
   * @defaultValue { maxPending: 100, maxDelayMs: 10 }
   */
  readonly flush?: { readonly maxPending?: number; readonly maxDelayMs?: number };
  /** Called whenever the number of leading done messages grows (their completions are acknowledged): ack or commit through `done - 1`. */
  readonly onDone?: (done: number) => void;
  /**
   * Retryable handler failures are retried here, with exponential backoff, up to `maxAttempts` runs
   * per message; after that (when `maxAttempts` > 1) the message counts as poison.
   * @defaultValue { maxAttempts: 1 } (no retry: a failure stops the batch and the broker redelivers)
   */
  readonly retry?: { readonly maxAttempts?: number; readonly backoffMs?: number; readonly maxBackoffMs?: number };
  /** How to wait between retries (an adapter heartbeats meanwhile). Resolves false to give up waiting. @defaultValue a timer */
  readonly wait?: (ms: number) => Promise<boolean | void>;
  /**
   * Takes a message that can never succeed (bad ID, payload conflict, remembered failure, dead-lettered
   * takeover, terminal handler error, retries exhausted), e.g. publishes it to a dead-letter topic; once
   * it resolves, the message is recorded as failed (`DEAD_LETTERED`) and counts as done
   * (`dead-lettered`), so the batch moves on. If it rejects, the message stops the batch. Without it,
   * such a message stops the batch (and a `poisoned` event fires).
   */
  readonly deadLetter?: (message: BatchMessage<P>, index: number, poison: PoisonInfo) => Promise<void>;
}

/** The error code a dead-lettered message's record carries, so a redelivery is not handed over again. */
export const DEAD_LETTERED = 'DEAD_LETTERED';

const WAITING = 0; // not started
const RUNNING = 1; // handler (or its retries, or the dead-letter hook) running
const PENDING = 2; // handler done, completion waiting for a flush
const DONE = 3; // final and done
const STOPPED = 4; // final and not done

interface Resolved {
  readonly concurrency: number;
  readonly byKey: boolean;
  readonly claimChunk: number;
  readonly maxPending: number;
  readonly maxDelayMs: number;
  readonly maxAttempts: number;
  readonly backoffMs: number;
  readonly maxBackoffMs: number;
}

function resolve(options: BatchOptions<never>, size: number): Resolved {
  const int = (name: string, value: number | undefined, fallback: number, min: number, max: number): number => {
    if (value === undefined) return fallback;
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new InvalidOptionsError(`processBatch option "${name}" must be an integer from ${min} to ${max}, got ${String(value)}`);
    }
    return value;
  };
  if (options.ordering !== undefined && options.ordering !== 'key' && options.ordering !== 'none') {
    throw new InvalidOptionsError(`processBatch option "ordering" must be "key" or "none", got ${String(options.ordering)}`);
  }
  return {
    concurrency: int('concurrency', options.concurrency, 1, 1, 10_000),
    byKey: options.ordering !== 'none',
    claimChunk: int('claimChunk', options.claimChunk, Math.max(1, size), 1, 1_000_000),
    maxPending: int('flush.maxPending', options.flush?.maxPending, 100, 1, 100_000),
    maxDelayMs: int('flush.maxDelayMs', options.flush?.maxDelayMs, 10, 0, 60_000),
    maxAttempts: int('retry.maxAttempts', options.retry?.maxAttempts, 1, 1, 1_000),
    backoffMs: int('retry.backoffMs', options.retry?.backoffMs, 100, 0, 3_600_000),
    maxBackoffMs: int('retry.maxBackoffMs', options.retry?.maxBackoffMs, 10_000, 0, 3_600_000),
  };
}

const timerWait = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

/**
 * One run of `processBatch`: claims ahead in chunks (one round trip each), runs handlers with bounded
 * concurrency (per-key order), completes them in coalesced flushes as they finish, retries and
 * dead-letters, and reports the contiguous done prefix as it grows. Broker-free: adapters translate.
 */
export class BatchRun<P, R> {
  readonly #host: BatchHost;
  readonly #messages: readonly BatchMessage<P>[];
  readonly #handler: AnyHandler<P, R>;
  readonly #options: BatchOptions<P>;
  readonly #o: Resolved;
  readonly #n: number;
  readonly #mark: (BatchMark & { store: MarkStore }) | undefined;

  readonly #prepared: (Prepared<P> | undefined)[];
  readonly #invalid: (FailedOutcome | undefined)[];
  /** Index of each message's first occurrence of its ID (itself for a first occurrence). */
  readonly #first: Int32Array;
  /** Messages before it are prepared (see #prepareTo); the index of each ID's first occurrence so far. */
  #preparedTo = 0;
  readonly #firstAt = new Map<string, number>();
  readonly #claims: (ClaimResult | undefined)[];
  readonly #belowMark: Uint8Array;
  readonly #state: Uint8Array;
  /** 1 while this run holds the message's claim unsettled: released at the end unless completed or failed by then. */
  readonly #owned: Uint8Array;
  readonly #outcomes: (Outcome<R> | undefined)[];
  readonly #leases: (KeptLease | undefined)[];
  readonly #attempts: Uint16Array;
  /** For PENDING messages: what to complete. */
  readonly #results: (R | undefined)[];
  readonly #serialized: (string | undefined)[];
  readonly #tokens: Float64Array;
  readonly #takeovers: Uint8Array;

  readonly #controller = new AbortController();
  /** Per message, with an `instrumentation`: its trace until its final outcome. */
  #traces: (MessageTrace | undefined)[] | undefined;
  readonly #keysBusy = new Set<string>();
  readonly #storeErrorsBefore: number;
  /** Messages before it have their claims answered. */
  #claimedTo = 0;
  /** Messages before it have a claim asked for (answered, or in flight: `#claiming`). */
  #claimAskedTo = 0;
  /** The claim round trip in flight, at most one (the next chunk is claimed ahead, while the current one runs). */
  #claiming: Promise<void> | undefined;
  /** A fail-closed claim failure, applied when the scan reaches its chunk. */
  #claimFailed: { readonly index: number; readonly thrown: unknown } | undefined;
  #scanFrom = 0;
  #running = 0;
  #halted = false;
  #stopAt: number;
  #done = 0;
  #markedTo = 0;
  #failOpen: Error | undefined;
  #pending: number[] = [];
  #pendingSince = 0;
  #flushing: Promise<void> | undefined;
  #flushTimer: ReturnType<typeof setTimeout> | undefined;
  #wake: (() => void) | undefined;
  /** Something changed since the loop last looked (a message finished, a flush returned). */
  #dirty = false;
  #callbackError: unknown;

  constructor(host: BatchHost, messages: readonly BatchMessage<P>[], handler: AnyHandler<P, R>, options: BatchOptions<P>) {
    this.#o = resolve(options as BatchOptions<never>, messages.length);
    this.#host = host;
    this.#messages = messages;
    this.#handler = handler;
    this.#options = options;
    const n = (this.#n = messages.length);
    this.#stopAt = n;
    this.#mark = options.mark && supportsMarks(host.store) ? { ...options.mark, store: host.store } : undefined;
    this.#prepared = new Array<Prepared<P> | undefined>(n);
    this.#invalid = new Array<FailedOutcome | undefined>(n);
    this.#first = new Int32Array(n);
    this.#claims = new Array<ClaimResult | undefined>(n);
    this.#belowMark = new Uint8Array(n);
    this.#state = new Uint8Array(n);
    this.#owned = new Uint8Array(n);
    this.#outcomes = new Array<Outcome<R> | undefined>(n);
    this.#leases = new Array<KeptLease | undefined>(n);
    this.#attempts = new Uint16Array(n);
    this.#results = new Array<R | undefined>(n);
    this.#serialized = new Array<string | undefined>(n);
    this.#tokens = new Float64Array(n);
    this.#takeovers = new Uint8Array(n);
    this.#storeErrorsBefore = host.storeErrors();

  }

  /**
   * Validates and fingerprints messages up to `to` (exclusive), in order. Done chunk by chunk, just
   * before each claim: the first handlers start without waiting for the whole batch's hashing, and
   * later chunks are prepared while earlier handlers wait on their I/O.
   */
  #prepareTo(to: number): void {
    const host = this.#host;
    for (let i = this.#preparedTo; i < to; i++) {
      const message = this.#messages[i]!;
      const p = message.idError === undefined ? host.prepare(message) : host.invalid(message.id, message.idError);
      if ('status' in p) {
        this.#invalid[i] = p;
        this.#first[i] = i;
        continue;
      }
      this.#prepared[i] = p;
      const first = this.#firstAt.get(p.id);
      if (first === undefined) this.#firstAt.set(p.id, i);
      this.#first[i] = first ?? i;
    }
    if (to > this.#preparedTo) this.#preparedTo = to;
  }

  async run(): Promise<BatchResult<R>> {
    try {
      for (;;) {
        this.#dirty = false;
        if (!this.#halted && (this.#host.isClosed() || (this.#options.shouldContinue !== undefined && !this.#options.shouldContinue()))) this.#halted = true;
        if (!this.#halted) await this.#launch();
        const idle = this.#halted || !this.#launchable(); // nothing more will start
        if (this.#running === 0 && idle && this.#flushing === undefined && this.#pending.length === 0 && this.#claiming === undefined) break;
        // Nothing runs (what waits may need these completions): send them now rather than at the timer.
        if (this.#running === 0 && this.#flushing === undefined && this.#pending.length > 0) this.#flush();
        if (!this.#dirty) await new Promise<void>((wake) => (this.#wake = wake));
      }
      await this.#flushAll();
    } finally {
      await this.#claiming; // never throws; its claims are released below
      for (const lease of this.#leases) if (lease) this.#host.dropLease(lease);
      await this.#releaseUnsettled();
    }
    if (this.#callbackError !== undefined) throw this.#callbackError;
    const outcomes: Outcome<R>[] = [];
    for (let i = 0; i < this.#n; i++) {
      const outcome = this.#outcomes[i];
      if (outcome === undefined || this.#state[i] === PENDING) break;
      outcomes.push(outcome);
      if (!isDone(outcome)) break;
    }
    return { outcomes, done: this.#done };
  }

  // --- launching -------------------------------------------------------------------------------

  /**
   * Starts every message that may start now. The next chunk is claimed ahead, in the background, once
   * the scan is within half a chunk (or the lookahead) of the end of the claimed ones, so handlers do not
   * wait for claim round trips; the scan waits only if it reaches messages whose claim is not answered.
   */
  async #launch(): Promise<void> {
    const lookahead = 4 * this.#o.concurrency + 16;
    let blockedKeys: Set<string> | undefined; // made on the first blocked key (most scans have none)
    let considered = 0;
    while (this.#scanFrom < this.#n && this.#state[this.#scanFrom] !== WAITING) this.#scanFrom++;
    const ahead = Math.max(lookahead, Math.ceil(this.#o.claimChunk / 2));
    if (this.#claimedTo > 0 && this.#claimAskedTo < this.#n && this.#claimAskedTo - this.#scanFrom <= ahead) this.#claimNext();
    // Back-pressure: while `maxPending` completions wait behind a flush, nothing more starts. Handlers
    // that ran without an acknowledged completion are what a crash re-runs, so this keeps them at most
    // `concurrency` running + `maxPending` waiting + `maxPending` in the flush.
    for (let i = this.#scanFrom; i < this.#n && this.#running < this.#o.concurrency && this.#pending.length < this.#o.maxPending && considered < lookahead && !this.#halted; i++) {
      if (i >= this.#claimedTo) {
        if (this.#claimFailed === undefined) {
          this.#claimNext();
          await this.#claiming;
        }
        const failed = this.#claimFailed;
        if (failed !== undefined) {
          this.#state[failed.index] = RUNNING; // so #stop counts it as started
          this.#startTrace(failed.index); // its outcome is final, so it is traced like one that ran
          this.#stop(failed.index, this.#host.storeUnavailable(this.#prepared[failed.index]!.id, failed.thrown, false));
          return;
        }
        if (this.#halted) return;
      }
      if (this.#state[i] !== WAITING) continue;
      considered++;
      if (this.#host.isClosed() || (this.#options.shouldContinue !== undefined && !this.#options.shouldContinue())) {
        this.#halted = true;
        return;
      }
      const first = this.#first[i]!;
      const key = this.#o.byKey && this.#o.concurrency > 1 ? this.#messages[i]!.key : undefined;
      const keyed = key !== undefined && key !== null;
      // A repeat waits for its first occurrence's outcome; a keyed message for the earlier ones of its key.
      if ((first !== i && this.#state[first] !== DONE && this.#state[first] !== STOPPED) || (keyed && (this.#keysBusy.has(key) || blockedKeys?.has(key) === true))) {
        if (this.#o.concurrency === 1) break; // one at a time: strictly in order
        if (keyed) (blockedKeys ??= new Set<string>()).add(key);
        continue;
      }
      if (keyed) this.#keysBusy.add(key);
      if (this.#invalid[i] !== undefined && this.#options.deadLetter === undefined && i > this.#scanFrom) {
        // Without a dead-letter hook a bad message stops the batch: nothing after it starts before it.
        if (keyed) this.#keysBusy.delete(key);
        break;
      }
      this.#state[i] = RUNNING;
      this.#running++;
      void this.#execute(i).then(
        () => this.#finished(key),
        (error: unknown) => {
          this.#callbackError ??= error;
          this.#halted = true;
          this.#finished(key);
        },
      );
    }
  }

  /** Whether anything is left that could start once running messages finish. */
  #launchable(): boolean {
    for (let i = this.#scanFrom; i < this.#n; i++) if (this.#state[i] === WAITING) return true;
    return false;
  }

  #finished(key: string | null | undefined): void {
    this.#running--;
    if (key !== undefined && key !== null) this.#keysBusy.delete(key);
    this.#signal();
  }

  #signal(): void {
    this.#dirty = true;
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Asks for the next chunk's claims, unless a claim is in flight (or failed) already. */
  #claimNext(): void {
    if (this.#claiming !== undefined || this.#claimFailed !== undefined || this.#claimAskedTo >= this.#n) return;
    this.#claiming = this.#claimChunk().finally(() => {
      this.#claiming = undefined;
      this.#signal();
    });
  }

  /** Claims the next chunk of first occurrences in one round trip (reading the mark with it). Never throws. */
  async #claimChunk(): Promise<void> {
    const from = this.#claimAskedTo;
    const to = Math.min(this.#n, from + this.#o.claimChunk);
    this.#claimAskedTo = to;
    this.#prepareTo(to);
    const indices: number[] = [];
    let unclaimed = false;
    for (let i = from; i < to; i++) {
      if (this.#prepared[i] !== undefined && this.#first[i] === i) indices.push(i);
      else unclaimed = true;
    }
    // Messages not claimed themselves (no valid ID, or a repeat of an ID earlier in the batch) are
    // checked against the mark too: an earlier delivery finished them (a bad message, or a repeat
    // with another payload, only once it was dead-lettered), so they must not be handed over again.
    const markUnclaimed = unclaimed && this.#mark !== undefined && this.#mark.skip;
    if (indices.length === 0) {
      if (markUnclaimed) await this.#markUnclaimed(from, to, undefined);
      this.#claimedTo = to;
      return;
    }
    const host = this.#host;
    try {
      if (this.#mark) {
        const mark = this.#mark;
        const answer = await mark.store.claimManyMarked(
          mark.ref,
          indices.map((i) => host.markedClaimRequest(this.#prepared[i]!, mark.positions[i]!)),
          mark.skip,
        );
        indices.forEach((i, k) => {
          const claim = answer.claims[k];
          if (claim === undefined) this.#belowMark[i] = 1;
          else this.#claims[i] = claim;
        });
        if (markUnclaimed) await this.#markUnclaimed(from, to, answer.mark ?? null);
      } else {
        const answers = await host.store.claimMany(indices.map((i) => host.claimRequest(this.#prepared[i]!)));
        indices.forEach((i, k) => (this.#claims[i] = answers[k]));
      }
    } catch (thrown) {
      host.storeError(this.#prepared[indices[0]!]!.id, 'claimMany', thrown);
      if (host.options.onStoreError === 'fail-closed' && !host.options.shadow) {
        // Fail-closed: the batch stops at this chunk's first claim, once the scan reaches it.
        this.#claimFailed = { index: indices[0]!, thrown };
        return;
      }
      this.#failOpen = toError(thrown);
      this.#claimedTo = to;
      return;
    }
    for (const i of indices) {
      const claim = this.#claims[i];
      if (claim?.status !== 'acquired') continue;
      this.#keep(i, claim.token);
    }
    this.#claimedTo = to;
  }

  /** Flags the unclaimed messages of `from..to` that lie inside the mark (`range`; read it when undefined). */
  async #markUnclaimed(from: number, to: number, range: MarkRange | null | undefined): Promise<void> {
    const mark = this.#mark!;
    if (range === undefined) {
      try {
        range = (await mark.store.getMark(mark.ref)) ?? null;
      } catch (thrown) {
        this.#host.storeError(this.#invalid[from]?.id ?? this.#prepared[from]?.id ?? '', 'getMark', thrown); // then they are answered as usual
        return;
      }
    }
    if (range === null) return;
    for (let i = from; i < to; i++) {
      const position = mark.positions[i]!;
      if (this.#first[i] !== i || this.#invalid[i] !== undefined) {
        if (position >= range.low && position <= range.high) this.#belowMark[i] = 1;
      }
    }
  }

  #keep(i: number, token: number): void {
    this.#owned[i] = 1;
    this.#tokens[i] = token;
    const lease: KeptLease = { scope: this.#host.scope, id: this.#prepared[i]!.id, token, controller: this.#controller, extendedAt: Date.now() };
    this.#leases[i] = lease;
    this.#host.keepLease(lease);
  }

  #drop(i: number): void {
    const lease = this.#leases[i];
    if (lease === undefined) return;
    this.#leases[i] = undefined;
    this.#host.dropLease(lease);
  }

  // --- running one message ---------------------------------------------------------------------

  /** Starts message `i`'s trace, with an `instrumentation`; it ends with the message's final outcome. */
  #startTrace(i: number): MessageTrace | undefined {
    const host = this.#host;
    const trace = host.options.instrumentation?.start(host.messageInfo(this.#messages[i]!));
    if (trace !== undefined) (this.#traces ??= new Array<MessageTrace | undefined>(this.#n))[i] = trace;
    return trace;
  }

  async #execute(i: number): Promise<void> {
    const trace = this.#startTrace(i);
    if (trace !== undefined) {
      const handler = this.#handler;
      return this.#executeWith(i, (context) => trace.run(() => handler(context)));
    }
    return this.#executeWith(i, this.#handler);
  }

  async #executeWith(i: number, handler: AnyHandler<P, R>): Promise<void> {
    const host = this.#host;
    const invalid = this.#invalid[i];
    if (invalid !== undefined) {
      if (this.#belowMark[i] === 1) {
        // Dead-lettered by an earlier delivery (that crashed before committing, or a replay): not handed over again.
        return this.#final(i, { status: 'dead-lettered', scope: host.scope, id: invalid.id, replayed: true, error: invalid.error, attempts: 0 });
      }
      return this.#settle(i, invalid);
    }
    const p = this.#prepared[i]!;
    const first = this.#first[i]!;
    if (this.#belowMark[i] === 1) {
      const now = Date.now();
      return this.#settle(i, { status: 'duplicate', scope: host.scope, id: p.id, replayed: true, result: undefined, record: { state: 'completed', token: 0, claimedAt: now, updatedAt: now }, belowMark: true });
    }
    if (first !== i) {
      const answer = await this.#repeat(p, first, handler);
      // A repeat of a message that stopped the batch stops with it; it is not poison of its own.
      return this.#state[first] === STOPPED ? this.#stop(i, answer) : this.#settle(i, answer);
    }
    let claim = this.#claims[i];
    if (claim === undefined) return this.#settle(i, await host.runUnprotected(p, handler, { failOpen: this.#failOpen ?? new StoreUnavailableError('no claim') }));

    for (;;) {
      if (claim.status !== 'acquired') return this.#settle(i, await host.answerExisting(p, claim, handler));
      // Fail-closed mid-batch: run nothing more once the store has failed or is known to be down.
      if (host.storeErrors() !== this.#storeErrorsBefore || host.store.isAvailable?.() === false) {
        return this.#settle(i, host.storeUnavailable(p.id, new StoreUnavailableError('the store became unreachable during the batch; stopped before this message'), false));
      }
      this.#attempts[i] = this.#attempts[i]! + 1;
      const running = host.runClaimed(p, claim.token, claim.takeover, handler, this.#controller, true, this.#options.deadLetter !== undefined);
      const ran = running instanceof Promise ? await running : running;
      if (ran.kind === 'done') {
        if (ran.completed !== undefined) {
          this.#owned[i] = 0;
          this.#drop(i);
          return this.#settle(
            i,
            ran.completed === 'ok'
              ? { status: 'processed', scope: host.scope, id: p.id, replayed: false, result: ran.result, token: claim.token, takeover: claim.takeover }
              : host.leaseLost(p.id, claim.token, ran.result),
          );
        }
        this.#queueCompletion(i, claim.token, claim.takeover, ran.result, ran.serialized);
        return;
      }
      // runClaimed settled the claim (released, failed, or left to expire when abandoned).
      this.#owned[i] = 0;
      this.#drop(i);
      const outcome = ran.outcome;
      if (!this.#retryable(outcome) || this.#attempts[i]! >= this.#o.maxAttempts || this.#halted) return this.#settle(i, outcome);
      const backoff = Math.min(this.#o.maxBackoffMs, this.#o.backoffMs * 2 ** (this.#attempts[i]! - 1));
      const waited = await (this.#options.wait ?? timerWait)(backoff);
      if (waited === false || this.#halted) return this.#settle(i, outcome);
      try {
        claim = await host.store.claim(host.claimRequest(p));
      } catch (thrown) {
        host.storeError(p.id, 'claim', thrown);
        return this.#settle(i, host.storeUnavailable(p.id, thrown, false));
      }
      if (claim.status === 'acquired') this.#keep(i, claim.token);
    }
  }

  /** A retryable handler failure: the handler threw and its claim was released (not abandoned, not terminal). */
  #retryable(outcome: Outcome<R>): boolean {
    return outcome.status === 'failed' && !outcome.terminal && !outcome.replayed && outcome.abandoned !== true && !(outcome.error instanceof OnceOnlyError && outcome.error.code === 'PROCESSOR_CLOSED');
  }

  /** A repeat of an ID earlier in the batch, answered by its first occurrence (or a conflict). */
  async #repeat(p: Prepared<P>, first: number, handler: AnyHandler<P, R>): Promise<Outcome<R>> {
    const host = this.#host;
    const original = this.#prepared[first]!;
    const differs = p.fingerprint !== undefined && original.fingerprint !== undefined && p.fingerprint !== original.fingerprint;
    if (differs && !(host.options.onConflict === 'duplicate' && !host.options.shadow)) {
      return host.repeatConflict(p, host.recordOf(original, this.#claims[first]), handler);
    }
    const answer = this.#outcomes[first]!;
    if (answer.status === 'processed' || answer.status === 'duplicate') {
      return {
        status: 'duplicate',
        scope: host.scope,
        id: p.id,
        replayed: true,
        result: answer.result,
        record: answer.status === 'duplicate' ? answer.record : host.completedRecord(answer),
        ...(differs ? { conflict: true as const } : {}),
      };
    }
    if (answer.status === 'dead-lettered') return { ...answer, id: p.id, replayed: true, attempts: 0 };
    return answer;
  }

  /** Records a message's final outcome: done, dead-lettered, or a stopper. */
  async #settle(i: number, outcome: Outcome<R>): Promise<void> {
    if (!isDone(outcome) && this.#poison(outcome, i)) {
      const error = outcome.status === 'failed' || outcome.status === 'conflict' ? outcome.error : new Error(outcome.status);
      const attempts = this.#attempts[i]!;
      const deadLetter = this.#options.deadLetter;
      const p = this.#prepared[i];
      if (outcome.status === 'failed' && outcome.replayed && outcome.record?.error === DEAD_LETTERED) {
        // Dead-lettered by an earlier delivery (that crashed before committing): not handed over again.
        return this.#final(i, { status: 'dead-lettered', scope: this.#host.scope, id: outcome.id, replayed: true, error, attempts });
      }
      if (deadLetter === undefined) {
        this.#host.poisoned({ id: p?.id ?? outcome.id, error, attempts, deadLettered: false, where: this.#messages[i]!.where });
      } else {
        try {
          await deadLetter(this.#messages[i]!, i, { error, attempts, outcome });
        } catch (thrown) {
          const failed: FailedOutcome = {
            status: 'failed',
            scope: this.#host.scope,
            id: outcome.id,
            replayed: false,
            error: toError(thrown),
            terminal: false,
            remembered: false,
          };
          this.#host.poisoned({ id: outcome.id, error, attempts, deadLettered: false, where: this.#messages[i]!.where });
          return this.#stop(i, failed);
        }
        if (p !== undefined && outcome.status !== 'conflict') await this.#recordDeadLettered(p);
        this.#host.poisoned({ id: outcome.id, error, attempts, deadLettered: true, where: this.#messages[i]!.where });
        return this.#final(i, { status: 'dead-lettered', scope: this.#host.scope, id: outcome.id, replayed: false, error, attempts } satisfies DeadLetteredOutcome);
      }
    }
    if (isDone(outcome)) return this.#final(i, outcome);
    this.#stop(i, outcome);
  }

  /** A message that can never succeed, whatever the number of redeliveries. */
  #poison(outcome: Outcome<R>, i: number): boolean {
    if (outcome.status === 'conflict') return true;
    if (outcome.status !== 'failed' || outcome.abandoned === true) return false;
    if (outcome.terminal) return true;
    return this.#o.maxAttempts > 1 && this.#attempts[i]! >= this.#o.maxAttempts && this.#retryable(outcome);
  }

  /** Marks a dead-lettered ID failed in the store, so redeliveries are answered without handing it over again. */
  async #recordDeadLettered(p: Prepared<P>): Promise<void> {
    const host = this.#host;
    try {
      const claim = await host.store.claim(host.claimRequest(p));
      if (claim.status === 'acquired') {
        await host.store.fail({ scope: host.scope, id: p.id, token: claim.token, error: DEAD_LETTERED, windowMs: host.options.windowMs });
      }
    } catch (thrown) {
      host.storeError(p.id, 'fail', thrown); // handed over already: a redelivery may hand it over again
    }
  }

  #final(i: number, outcome: Outcome<R>): void {
    this.#outcomes[i] = outcome;
    this.#state[i] = DONE;
    this.#host.emit(outcome);
    this.#endTrace(i, outcome);
    this.#advance();
  }

  #stop(i: number, outcome: Outcome<R>): void {
    this.#outcomes[i] = outcome;
    this.#state[i] = STOPPED;
    this.#host.emit(outcome);
    this.#endTrace(i, outcome);
    if (i < this.#stopAt) this.#stopAt = i;
    this.#halted = true;
    this.#signal();
  }

  #endTrace(i: number, outcome: Outcome<R>): void {
    const trace = this.#traces?.[i];
    if (trace === undefined) return;
    this.#traces![i] = undefined;
    trace.end(outcome);
  }

  /** Moves the done prefix over messages that are now done, and tells the caller. */
  #advance(): void {
    const before = this.#done;
    while (this.#done < this.#stopAt && this.#state[this.#done] === DONE) this.#done++;
    if (this.#done === before || this.#options.onDone === undefined) return;
    try {
      this.#options.onDone(this.#done);
    } catch (error) {
      this.#callbackError ??= error;
      this.#halted = true;
    }
  }

  // --- completions -----------------------------------------------------------------------------

  #queueCompletion(i: number, token: number, takeover: boolean, result: R, serialized: string | undefined): void {
    this.#state[i] = PENDING;
    this.#tokens[i] = token;
    this.#takeovers[i] = takeover ? 1 : 0;
    this.#results[i] = result;
    this.#serialized[i] = serialized;
    if (this.#pending.length === 0) this.#pendingSince = Date.now();
    this.#pending.push(i);
    this.#scheduleFlush();
  }

  #scheduleFlush(): void {
    if (this.#flushing !== undefined || this.#pending.length === 0) return;
    const waited = Date.now() - this.#pendingSince;
    // Flush now when enough are waiting or they waited long enough (the run loop also flushes when idle).
    if (this.#pending.length >= this.#o.maxPending || waited >= this.#o.maxDelayMs) {
      this.#flush();
      return;
    }
    if (this.#flushTimer === undefined) {
      this.#flushTimer = setTimeout(() => {
        this.#flushTimer = undefined;
        this.#scheduleFlush();
      }, this.#o.maxDelayMs - waited);
      this.#flushTimer.unref?.();
    }
  }

  #flush(): void {
    if (this.#flushTimer !== undefined) {
      clearTimeout(this.#flushTimer);
      this.#flushTimer = undefined;
    }
    const batch = this.#pending.splice(0, this.#o.maxPending);
    if (this.#pending.length > 0) this.#pendingSince = Date.now();
    this.#flushing = this.#send(batch).finally(() => {
      this.#flushing = undefined;
      this.#scheduleFlush();
      this.#signal();
    });
  }

  /** Completes `batch` in one round trip (advancing the mark over the prefix it makes done), then settles it. */
  async #send(batch: readonly number[]): Promise<void> {
    const host = this.#host;
    const requests: CompleteRequest[] = batch.map((i) => ({ scope: host.scope, id: this.#prepared[i]!.id, token: this.#tokens[i]!, result: this.#serialized[i], windowMs: host.options.windowMs }));
    const advance = this.#markAdvance(batch);
    let results: TransitionResult[] | undefined;
    let failure: unknown;
    try {
      results = await host.withAttempts(async () =>
        this.#mark ? (await this.#mark.store.completeManyMarked(this.#mark.ref, requests, advance)).results : host.store.completeMany(requests),
      );
      if (advance && results.every((r) => r === 'ok')) this.#markedTo = advance.prefix;
    } catch (thrown) {
      failure = thrown;
      host.storeError(requests[0]!.id, 'completeMany', thrown);
    }
    batch.forEach((i, k) => {
      this.#drop(i);
      const id = this.#prepared[i]!.id;
      const result = this.#results[i] as R;
      this.#results[i] = undefined;
      const answer = results?.[k];
      // Completed, lost, or (store failure) left to expire: the handler ran, so it is never released.
      this.#owned[i] = 0;
      if (answer === undefined) return this.#stop(i, host.storeUnavailable(id, failure, true));
      if (answer === 'lease-lost') return this.#stop(i, host.leaseLost(id, this.#tokens[i]!, result));
      this.#final(i, { status: 'processed', scope: host.scope, id, replayed: false, result, token: this.#tokens[i]!, takeover: this.#takeovers[i] === 1 });
    });
  }

  /**
   * The mark advance a flush carries: over the prefix that is done once `batch` is completed (from the
   * batch's first position). Applied by the store only if every completion of the flush succeeds.
   */
  #markAdvance(batch: readonly number[]): (MarkAdvance & { prefix: number }) | undefined {
    const mark = this.#mark;
    if (!mark) return undefined;
    const inBatch = new Set(batch);
    let prefix = this.#done;
    while (prefix < this.#stopAt && (this.#state[prefix] === DONE || inBatch.has(prefix))) prefix++;
    if (prefix === 0 || prefix <= this.#markedTo) return undefined;
    return { from: Math.min(mark.from ?? mark.positions[0]!, mark.positions[0]!), to: mark.positions[prefix - 1]!, prefix };
  }

  /** Sends what is still pending and waits for every flush; advances the mark over a prefix of duplicates. */
  async #flushAll(): Promise<void> {
    for (;;) {
      if (this.#flushing !== undefined) await this.#flushing;
      else if (this.#pending.length > 0) this.#flush();
      else break;
    }
    const advance = this.#markAdvance([]);
    if (advance && this.#mark) {
      try {
        await this.#host.withAttempts(() => this.#mark!.store.completeManyMarked(this.#mark!.ref, [], advance));
        this.#markedTo = advance.prefix;
      } catch (thrown) {
        this.#host.storeError(this.#prepared[0]?.id ?? '', 'completeManyMarked', thrown); // the IDs still protect the window
      }
    }
  }

  /** Releases, in one round trip, every claim this run holds and did not settle (never started, or stopped before running). */
  async #releaseUnsettled(): Promise<void> {
    const host = this.#host;
    const refs: { scope: string; id: string; token: number }[] = [];
    for (let i = 0; i < this.#n; i++) {
      if (this.#owned[i] !== 1) continue;
      this.#owned[i] = 0;
      refs.push({ scope: host.scope, id: this.#prepared[i]!.id, token: this.#tokens[i]! });
    }
    if (refs.length === 0) return;
    try {
      await host.store.releaseMany(refs);
    } catch (thrown) {
      host.storeError(refs[0]!.id, 'releaseMany', thrown); // the leases expire anyway
    }
  }
}
