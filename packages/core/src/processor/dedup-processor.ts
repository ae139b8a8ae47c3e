import {
  InProgressError,
  InvalidIdError,
  LeaseLostError,
  OnceOnlyError,
  PayloadConflictError,
  RecordedFailureError,
  StoreUnavailableError,
  TakeoverDeadLetterError,
  toError,
  FingerprintError,
} from '../errors.js';
import { fingerprintOf } from '../ids/content-id.js';
import { validateId } from '../ids/validate-id.js';
import { MemoryStore } from '../store/memory-store.js';
import { supportsMarks, type ClaimRequest, type ClaimResult, type DedupRecord, type DedupStore, type MarkAdvance, type MarkRef, type TransitionResult } from '../store/store.js';
import type { Handler, HandlerContext, Message } from './context.js';
import { Emitter, type ProcessorEvents } from './events.js';
import { LeaseKeeper, type KeptLease } from './lease-keeper.js';
import { resolveProcessorOptions, type DedupProcessorOptions, type ResolvedProcessorOptions } from './options.js';
import { isDone, type BatchResult, type FailedOutcome, type Outcome, type OutcomeStatus, type ProcessedOutcome } from './outcome.js';

type ShadowReason = 'duplicate' | 'in-progress' | 'conflict' | 'failed';

/** Counters of everything a processor decided, for metrics. */
export type ProcessorStats = Record<OutcomeStatus, number> & {
  takeovers: number;
  failOpen: number;
  shadowed: number;
  storeErrors: number;
};

const NEVER_ABORTED = new AbortController().signal;
const JSON_SERIALIZER = {
  serialize: (value: unknown) => JSON.stringify(value),
  deserialize: (text: string) => JSON.parse(text) as unknown,
};

/** What running a handler under a claim gave: a result to complete, or an outcome with the claim settled. */
type Ran<R> = { kind: 'done'; result: R; serialized: string | undefined } | { kind: 'outcome'; outcome: Outcome<R> };

/** A validated message, ready to claim. */
interface Prepared<P> {
  readonly id: string;
  readonly payload: P | undefined;
  readonly fingerprint: string | undefined;
}

/**
 * Turns at-least-once delivery into effectively-once processing: for each (scope, message ID) the
 * handler's effect is applied once inside the window, and later deliveries of the ID are recognised and
 * skipped (or answered with the recorded result).
 *
 * `process` never throws: it returns an {@link Outcome} for every case, for adapters to map onto their
 * broker. `execute` is the throwing form for direct use.
 *
 * @example
 * const processor = new DedupProcessor({ scope: 'send-welcome-email', recordResults: true });
 * const outcome = await processor.process({ id: msg.id, payload: msg.body }, async ({ token, signal }) => {
 *   return mailer.send(msg.body, { signal });
 * });
 * if (outcome.status === 'duplicate') log('already sent', outcome.result);
 */
export class DedupProcessor {
  readonly scope: string;
  readonly store: DedupStore;
  readonly options: Readonly<ResolvedProcessorOptions>;

  readonly #events = new Emitter<ProcessorEvents>();
  readonly #inflight = new Map<string, Promise<unknown>>();
  readonly #leases: LeaseKeeper;
  readonly #ownsStore: boolean;
  readonly #serializer: { serialize(value: unknown): string; deserialize(text: string): unknown };
  readonly #stats: ProcessorStats = {
    processed: 0,
    duplicate: 0,
    'in-progress': 0,
    conflict: 0,
    failed: 0,
    'lease-lost': 0,
    'store-unavailable': 0,
    takeovers: 0,
    failOpen: 0,
    shadowed: 0,
    storeErrors: 0,
  };

  /** @throws {InvalidOptionsError} naming each wrong option. */
  constructor(options: DedupProcessorOptions) {
    this.options = resolveProcessorOptions(options);
    this.scope = this.options.scope;
    this.#ownsStore = this.options.store === undefined;
    this.store = this.options.store ?? new MemoryStore();
    this.#serializer = this.options.serializer ?? JSON_SERIALIZER;
    this.#leases = new LeaseKeeper({
      store: this.store,
      leaseMs: this.options.leaseMs,
      heartbeatMs: this.options.heartbeatMs,
      onLost: (lease, reason) => {
        this.#events.emit('lease-lost', { scope: lease.scope, id: lease.id, token: lease.token, reason });
      },
      onStoreError: (lease, error) => this.#storeError(lease.id, 'extend', error),
    });
  }

  /** Subscribes to an event; returns a function that unsubscribes. */
  on<K extends keyof ProcessorEvents>(event: K, listener: ProcessorEvents[K]): () => void {
    return this.#events.on(event, listener);
  }

  off<K extends keyof ProcessorEvents>(event: K, listener: ProcessorEvents[K]): void {
    this.#events.off(event, listener);
  }

  /** A snapshot of the counters. */
  stats(): ProcessorStats {
    return { ...this.#stats };
  }

  /**
   * Processes one delivery: claims its ID, runs `handler` if this delivery is the one to run it, and
   * records the completion. Never throws; every case is an {@link Outcome}.
   */
  async process<P, R>(message: Message<P>, handler: Handler<P, R>): Promise<Outcome<R>> {
    const prepared = this.#prepare(message);
    if ('status' in prepared) return this.#emit(prepared);
    if (!this.options.singleFlight || this.options.shadow) return this.#emit(await this.#claimAndRun(prepared, handler));

    // Single-flight: a second delivery of an ID this process is running waits for the first to settle,
    // then claims as usual (and finds it completed, or released).
    let pending: Promise<unknown> | undefined;
    while ((pending = this.#inflight.get(prepared.id)) !== undefined) await pending;
    const run = this.#claimAndRun(prepared, handler);
    this.#inflight.set(prepared.id, run);
    try {
      return this.#emit(await run);
    } finally {
      if (this.#inflight.get(prepared.id) === run) this.#inflight.delete(prepared.id);
    }
  }

  /**
   * The throwing form of {@link process}: resolves to the handler's result (or the recorded one for a
   * duplicate, `undefined` if results are not recorded) and throws a typed error otherwise:
   * `InProgressError`, `PayloadConflictError`, `LeaseLostError`, `StoreUnavailableError` (all but the
   * conflict are `retriable`), the recorded `RecordedFailureError` / `TakeoverDeadLetterError`, an
   * `InvalidIdError`, or the handler's own error.
   */
  async execute<P, R>(message: Message<P>, handler: Handler<P, R>): Promise<R | undefined> {
    const outcome = await this.process(message, handler);
    if (outcome.status === 'processed' || outcome.status === 'duplicate') return outcome.result;
    throw outcome.error;
  }

  /**
   * Processes a batch in order with one store round trip to claim it and one to complete it. Stops at the
   * first message that is not done, releases the claims it will not finish, and reports how many leading
   * messages are done, so a consumer never commits past an unfinished one. Duplicates inside the batch
   * are answered by their first occurrence.
   *
   * @param options.shouldContinue checked before each message; returning false (e.g. the batch went stale
   * after a rebalance) stops the batch there.
   * @param options.mark an offset high-water mark (Kafka: per group, topic and partition) with one
   * position per message, in order. With a store that supports marks it is read in the claim round trip
   * (messages inside it are answered as duplicates with `belowMark: true`, unless `skip` is false) and
   * advanced over the leading done messages in the completion round trip (from `from`, when positions
   * before the first message are known to hold nothing to process). Ignored by other stores.
   */
  async processBatch<P, R>(
    messages: readonly Message<P>[],
    handler: Handler<P, R>,
    options: { shouldContinue?: () => boolean; mark?: { ref: MarkRef; positions: readonly number[]; skip: boolean; from?: number } } = {},
  ): Promise<BatchResult<R>> {
    const store = this.store;
    const mark = options.mark && supportsMarks(store) ? { ...options.mark, store } : undefined;
    // Validate up to the first bad message: nothing after it may run before it is dealt with.
    const prepared: Prepared<P>[] = [];
    let invalid: FailedOutcome | undefined;
    for (const message of messages) {
      const p = this.#prepare(message);
      if ('status' in p) {
        invalid = p;
        break;
      }
      prepared.push(p);
    }

    // Repeats of an ID inside the batch are claimed once and answered by their first occurrence.
    const firstAt = new Map<string, number>();
    const unique: number[] = [];
    prepared.forEach((p, i) => {
      if (firstAt.has(p.id)) return;
      firstAt.set(p.id, i);
      unique.push(i);
    });

    let claims = new Map<string, ClaimResult>();
    const belowMark = new Set<string>();
    let failOpen: Error | undefined;
    if (unique.length > 0) {
      try {
        if (mark) {
          const answer = await mark.store.claimManyMarked(
            mark.ref,
            unique.map((i) => ({ ...this.#claimRequest(prepared[i]!), position: mark.positions[i]! })),
            mark.skip,
          );
          claims = new Map();
          unique.forEach((i, k) => {
            const claim = answer.claims[k];
            if (claim === undefined) belowMark.add(prepared[i]!.id);
            else claims.set(prepared[i]!.id, claim);
          });
        } else {
          const answers = await this.store.claimMany(unique.map((i) => this.#claimRequest(prepared[i]!)));
          claims = new Map(unique.map((i, k) => [prepared[i]!.id, answers[k]!]));
        }
      } catch (thrown) {
        if (this.options.onStoreError === 'fail-closed' && !this.options.shadow) {
          return { outcomes: [this.#emit(this.#storeUnavailable(prepared[0]!.id, thrown, false))], done: 0 };
        }
        failOpen = toError(thrown);
      }
    }

    // Every acquired claim is kept alive for the whole batch: completion comes at its end.
    const controller = new AbortController();
    const kept = new Map<string, KeptLease>();
    for (const [id, claim] of claims) {
      if (claim.status !== 'acquired') continue;
      const lease: KeptLease = { scope: this.scope, id, token: claim.token, controller, extendedAt: Date.now() };
      kept.set(id, lease);
      this.#leases.keep(lease);
    }

    type Slot = Outcome<R> | { complete: { token: number; takeover: boolean; result: R; serialized: string | undefined } } | { repeatOf: number };
    const slots: Slot[] = [];
    const settled = new Set<string>(); // claims completed below, failed or released by #runClaimed
    try {
      for (let i = 0; i < prepared.length; i++) {
        if (options.shouldContinue && !options.shouldContinue()) break;
        const p = prepared[i]!;
        const first = firstAt.get(p.id)!;
        if (first !== i) {
          slots.push({ repeatOf: first });
          continue;
        }
        const claim = claims.get(p.id);
        let outcome: Outcome<R>;
        if (belowMark.has(p.id)) {
          const now = Date.now();
          outcome = { status: 'duplicate', scope: this.scope, id: p.id, replayed: true, result: undefined, record: { state: 'completed', token: 0, claimedAt: now, updatedAt: now }, belowMark: true };
        } else if (claim === undefined) {
          outcome = await this.#runUnprotected(p, handler, { failOpen: failOpen ?? new StoreUnavailableError('no claim') });
        } else if (claim.status === 'acquired') {
          const ran = await this.#runClaimed(p, claim.token, claim.takeover, handler, controller.signal);
          settled.add(p.id);
          if (ran.kind === 'done') {
            slots.push({ complete: { token: claim.token, takeover: claim.takeover, result: ran.result, serialized: ran.serialized } });
            continue;
          }
          outcome = ran.outcome;
        } else {
          outcome = await this.#answerExisting(p, claim, handler);
        }
        slots.push(outcome);
        if (outcome.status !== 'processed' && outcome.status !== 'duplicate') break;
      }
    } finally {
      for (const lease of kept.values()) this.#leases.drop(lease);
    }

    // One round trip for the completions, one for the claims this batch will not finish.
    const completing = slots.flatMap((slot, i) => ('complete' in slot ? [{ i, ...slot.complete }] : []));
    let completed: TransitionResult[] | undefined;
    let completeError: unknown;
    // The mark may advance over the leading slots that end done: all but a last one that stopped the batch.
    const last = slots[slots.length - 1];
    const leading = last !== undefined && 'status' in last && !isDone(last) ? slots.length - 1 : slots.length;
    const advance: MarkAdvance | undefined = mark && leading > 0 ? { from: Math.min(mark.from ?? mark.positions[0]!, mark.positions[0]!), to: mark.positions[leading - 1]! } : undefined;
    if (completing.length > 0 || advance) {
      const requests = completing.map((c) => ({ scope: this.scope, id: prepared[c.i]!.id, token: c.token, result: c.serialized, windowMs: this.options.windowMs }));
      try {
        completed = await this.#withAttempts(async () =>
          mark ? (await mark.store.completeManyMarked(mark.ref, requests, advance)).results : this.store.completeMany(requests),
        );
      } catch (thrown) {
        completeError = thrown;
      }
    }
    const unfinished = [...kept.values()].filter((lease) => !settled.has(lease.id));
    if (unfinished.length > 0) {
      try {
        await this.store.releaseMany(unfinished.map(({ scope, id, token }) => ({ scope, id, token })));
      } catch (thrown) {
        for (const lease of unfinished) this.#storeError(lease.id, 'release', thrown); // the leases expire anyway
      }
    }

    const outcomes: Outcome<R>[] = [];
    let k = 0;
    slots.forEach((slot, i) => {
      const id = prepared[i]!.id;
      if ('status' in slot) {
        outcomes.push(slot);
      } else if ('complete' in slot) {
        const answer = completed?.[k++];
        outcomes.push(
          answer === undefined
            ? this.#storeUnavailable(id, completeError, true)
            : answer === 'ok'
              ? { status: 'processed', scope: this.scope, id, replayed: false, result: slot.complete.result, token: slot.complete.token, takeover: slot.complete.takeover }
              : this.#leaseLost(id, slot.complete.token, slot.complete.result),
        );
      } else {
        const first = outcomes[slot.repeatOf]!;
        outcomes.push(
          first.status === 'processed' || first.status === 'duplicate'
            ? { status: 'duplicate', scope: this.scope, id, replayed: true, result: first.result, record: first.status === 'duplicate' ? first.record : this.#completedRecord(first) }
            : first,
        );
      }
    });
    if (invalid && outcomes.length === prepared.length && outcomes.every(isDone)) outcomes.push(invalid);

    let done = 0;
    while (done < outcomes.length && isDone(outcomes[done]!)) done++;
    for (const outcome of outcomes) this.#emit(outcome);
    return { outcomes, done };
  }

  /** Stops keeping leases and closes the store if the processor created it. */
  async close(): Promise<void> {
    this.#leases.stop();
    if (this.#ownsStore) await this.store.close();
  }

  // ---------------------------------------------------------------------------------------------

  #prepare<P>(message: Message<P>): Prepared<P> | FailedOutcome {
    let id: string;
    try {
      id = validateId(message?.id, { maxBytes: this.options.maxIdBytes });
    } catch (error) {
      return this.#failed(safeId(message?.id), error as InvalidIdError, true, false, false);
    }
    const payload = message.payload;
    let fingerprint: string | undefined;
    const option = this.options.fingerprint;
    if (payload !== undefined && option !== false) {
      try {
        fingerprint = option === 'auto' ? fingerprintOf(payload) : option(payload);
      } catch (error) {
        const wrapped = error instanceof FingerprintError ? error : new FingerprintError(`fingerprint function threw: ${toError(error).message}`, { cause: error });
        return this.#failed(id, wrapped, true, false, false);
      }
    }
    return { id, payload, fingerprint };
  }

  #claimRequest(p: Prepared<unknown>): ClaimRequest {
    return { scope: this.scope, id: p.id, fingerprint: p.fingerprint, leaseMs: this.options.leaseMs, windowMs: this.options.windowMs };
  }

  #completedRecord(outcome: ProcessedOutcome<unknown>): DedupRecord {
    const now = Date.now();
    const result = this.options.recordResults ? this.#serialize(outcome.result).text : undefined;
    return { state: 'completed', token: outcome.token, claimedAt: now, updatedAt: now, ...(result === undefined ? {} : { result }) };
  }

  async #claimAndRun<P, R>(p: Prepared<P>, handler: Handler<P, R>): Promise<Outcome<R>> {
    let claim: ClaimResult;
    try {
      claim = await this.store.claim(this.#claimRequest(p));
    } catch (thrown) {
      if (this.options.onStoreError === 'fail-open' || this.options.shadow) {
        return this.#runUnprotected(p, handler, { failOpen: toError(thrown) });
      }
      return this.#storeUnavailable(p.id, thrown, false);
    }
    if (claim.status !== 'acquired') return this.#answerExisting(p, claim, handler);

    const controller = new AbortController();
    const lease: KeptLease = { scope: this.scope, id: p.id, token: claim.token, controller, extendedAt: Date.now() };
    this.#leases.keep(lease);
    let ran: Ran<R>;
    try {
      ran = await this.#runClaimed(p, claim.token, claim.takeover, handler, controller.signal);
    } finally {
      this.#leases.drop(lease);
    }
    if (ran.kind === 'outcome') return ran.outcome;

    let result: 'ok' | 'lease-lost';
    try {
      result = await this.#withAttempts(() =>
        this.store.complete({ scope: this.scope, id: p.id, token: claim.token, result: ran.serialized, windowMs: this.options.windowMs }),
      );
    } catch (thrown) {
      return this.#storeUnavailable(p.id, thrown, true);
    }
    if (result === 'lease-lost') return this.#leaseLost(p.id, claim.token, ran.result);
    return { status: 'processed', scope: this.scope, id: p.id, replayed: false, result: ran.result, token: claim.token, takeover: claim.takeover };
  }

  /**
   * Runs the handler under an acquired claim (after applying the takeover policy). Answers `done` with
   * the result to complete, or a final outcome (failed, dead-lettered, reconciled) with the claim settled.
   */
  async #runClaimed<P, R>(
    p: Prepared<P>,
    token: number,
    takeover: boolean,
    handler: Handler<P, R>,
    signal: AbortSignal,
  ): Promise<Ran<R>> {
    if (takeover) {
      const policy = this.options.onTakeover;
      this.#stats.takeovers++;
      this.#events.emit('takeover', { scope: this.scope, id: p.id, token, policy });
      if (policy === 'dead-letter') {
        const error = new TakeoverDeadLetterError(
          `"${p.id}" was claimed before and its lease expired mid-handler; the effect may or may not have happened (policy: dead-letter)`,
        );
        return { kind: 'outcome', outcome: await this.#settleFailure(p.id, token, error, true) };
      }
      if (policy === 'reconcile') {
        let decision: 'done' | 'run';
        try {
          decision = await this.options.reconcile!({ scope: this.scope, id: p.id, payload: p.payload, token });
        } catch (thrown) {
          return { kind: 'outcome', outcome: await this.#settleFailure(p.id, token, toError(thrown), this.#isTerminal(thrown)) };
        }
        if (decision === 'done') {
          let result: 'ok' | 'lease-lost';
          try {
            result = await this.store.complete({ scope: this.scope, id: p.id, token, windowMs: this.options.windowMs });
          } catch (thrown) {
            return { kind: 'outcome', outcome: this.#storeUnavailable(p.id, thrown, false) };
          }
          if (result === 'lease-lost') return { kind: 'outcome', outcome: this.#leaseLost(p.id, token, undefined as R) };
          return {
            kind: 'outcome',
            outcome: {
              status: 'duplicate',
              scope: this.scope,
              id: p.id,
              replayed: true,
              result: undefined,
              record: { state: 'completed', token, claimedAt: Date.now(), updatedAt: Date.now() },
              reconciled: true,
            },
          };
        }
      }
    }

    const context: HandlerContext<P> = { scope: this.scope, id: p.id, payload: p.payload, token, signal, takeover, replayed: false };
    let result: R;
    try {
      result = await handler(context);
    } catch (thrown) {
      return { kind: 'outcome', outcome: await this.#settleFailure(p.id, token, toError(thrown), this.#isTerminal(thrown)) };
    }
    return { kind: 'done', result, serialized: this.options.recordResults ? this.#serialize(result).text : undefined };
  }

  /** Answers a claim that found a record: duplicate, in progress, remembered failure or conflict. */
  async #answerExisting<P, R>(p: Prepared<P>, claim: Exclude<ClaimResult, { status: 'acquired' }>, handler: Handler<P, R>): Promise<Outcome<R>> {
    const record = claim.record;
    const conflict = p.fingerprint !== undefined && record.fingerprint !== undefined && record.fingerprint !== p.fingerprint;
    if (this.options.shadow) {
      const wouldBe: ShadowReason = conflict ? 'conflict' : claim.status === 'completed' ? 'duplicate' : claim.status;
      return this.#runUnprotected(p, handler, { shadowOf: wouldBe });
    }
    if (conflict) {
      if (this.options.onConflict === 'reject') {
        return {
          status: 'conflict',
          scope: this.scope,
          id: p.id,
          replayed: false,
          record,
          error: new PayloadConflictError(`"${p.id}" was seen before with a different payload (fingerprint mismatch)`, { record }),
        };
      }
      if (this.options.onConflict === 'process') return this.#runUnprotected(p, handler, { conflict: true });
    }
    if (claim.status === 'completed') {
      return {
        status: 'duplicate',
        scope: this.scope,
        id: p.id,
        replayed: true,
        result: record.result === undefined ? undefined : (this.#deserialize(record.result) as R),
        record,
        ...(conflict ? { conflict: true as const } : {}),
      };
    }
    if (claim.status === 'failed') {
      const error =
        record.error === 'TAKEOVER_DEAD_LETTER'
          ? new TakeoverDeadLetterError(`"${p.id}" was dead-lettered after a takeover`, { record })
          : new RecordedFailureError(`"${p.id}" failed terminally before (${record.error ?? 'unknown'}); not run again within the window`, { record });
      return { ...this.#failed(p.id, error, true, true, true), record };
    }
    const remaining = (record.leaseUntil ?? 0) - Date.now();
    const retryAfterMs = Math.max(25, Math.min(this.options.inProgressRetryMs, remaining > 0 ? remaining : this.options.inProgressRetryMs));
    return {
      status: 'in-progress',
      scope: this.scope,
      id: p.id,
      replayed: false,
      record,
      retryAfterMs,
      error: new InProgressError(`"${p.id}" is being processed by another worker (lease held)`, retryAfterMs, { record }),
    };
  }

  /** Runs the handler with no claim: fail-open, shadow mode, or `onConflict: 'process'`. */
  async #runUnprotected<P, R>(
    p: Prepared<P>,
    handler: Handler<P, R>,
    why: { failOpen?: Error; shadowOf?: ShadowReason; conflict?: true },
  ): Promise<Outcome<R>> {
    if (why.failOpen) {
      this.#stats.failOpen++;
      this.#events.emit('fail-open', { scope: this.scope, id: p.id, error: why.failOpen });
    }
    if (why.shadowOf) {
      this.#stats.shadowed++;
      this.#events.emit('shadow', { scope: this.scope, id: p.id, wouldBe: why.shadowOf });
    }
    const context: HandlerContext<P> = {
      scope: this.scope,
      id: p.id,
      payload: p.payload,
      token: 0,
      signal: NEVER_ABORTED,
      takeover: false,
      replayed: false,
      ...(why.shadowOf ? { shadowOf: why.shadowOf } : {}),
    };
    try {
      const result = await handler(context);
      return {
        status: 'processed',
        scope: this.scope,
        id: p.id,
        replayed: false,
        result,
        token: 0,
        takeover: false,
        ...(why.failOpen ? { failOpen: true as const } : {}),
        ...(why.shadowOf ? { shadowOf: why.shadowOf } : {}),
        ...(why.conflict ? { conflict: true as const } : {}),
      };
    } catch (thrown) {
      return this.#failed(p.id, toError(thrown), this.#isTerminal(thrown), false, false);
    }
  }

  /** After a handler failure: remember it (terminal, if configured) or release the claim for a retry. */
  async #settleFailure(id: string, token: number, error: Error, terminal: boolean): Promise<FailedOutcome> {
    const remember = terminal && (this.options.rememberFailures || error instanceof TakeoverDeadLetterError);
    let remembered = false;
    try {
      if (remember) {
        remembered = (await this.store.fail({ scope: this.scope, id, token, error: errorCode(error), windowMs: this.options.windowMs })) === 'ok';
      } else {
        await this.store.release({ scope: this.scope, id, token });
      }
    } catch (thrown) {
      this.#storeError(id, remember ? 'fail' : 'release', thrown); // the lease expires anyway
    }
    return this.#failed(id, error, terminal, remembered, false);
  }

  async #withAttempts<T>(operation: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await operation();
      } catch (thrown) {
        if (attempt >= this.options.completeAttempts) throw thrown;
        await new Promise((resolve) => setTimeout(resolve, 25 * 2 ** attempt));
      }
    }
  }

  #isTerminal(thrown: unknown): boolean {
    const isTerminal = this.options.isTerminal;
    return isTerminal ? isTerminal(toError(thrown)) : false;
  }

  #serialize(value: unknown): { text: string | undefined } {
    if (value === undefined) return { text: undefined };
    try {
      return { text: this.#serializer.serialize(value) };
    } catch (error) {
      process.emitWarning(`onceonly: result of "${this.scope}" could not be serialised and was not recorded: ${toError(error).message}`);
      return { text: undefined };
    }
  }

  #deserialize(text: string): unknown {
    try {
      return this.#serializer.deserialize(text);
    } catch {
      return undefined;
    }
  }

  #failed(id: string, error: Error, terminal: boolean, remembered: boolean, replayed: boolean): FailedOutcome {
    return { status: 'failed', scope: this.scope, id, replayed, error, terminal, remembered };
  }

  #storeUnavailable(id: string, thrown: unknown, handlerRan: boolean): Outcome<never> {
    const error =
      thrown instanceof StoreUnavailableError
        ? thrown
        : new StoreUnavailableError(`store error: ${toError(thrown).message}`, { cause: thrown });
    return { status: 'store-unavailable', scope: this.scope, id, replayed: false, error, handlerRan };
  }

  #leaseLost<R>(id: string, token: number, result: R): Outcome<R> {
    const error = new LeaseLostError(
      `"${id}" finished, but its lease (token ${token}) had passed to another owner; the completion was refused`,
    );
    this.#events.emit('lease-lost', { scope: this.scope, id, token, reason: 'completion refused: stale fencing token' });
    return { status: 'lease-lost', scope: this.scope, id, replayed: false, result, token, error };
  }

  #storeError(id: string, operation: string, thrown: unknown): void {
    this.#stats.storeErrors++;
    this.#events.emit('store-error', { scope: this.scope, id, operation, error: toError(thrown) });
  }

  #emit<O extends Outcome<unknown>>(outcome: O): O {
    this.#stats[outcome.status]++;
    this.#events.emit('outcome', outcome);
    return outcome;
  }
}

/** A short code for a recorded failure: the error's `code` if it is a plain token, else its name. */
function errorCode(error: Error): string {
  const code = (error as { code?: unknown }).code;
  if (error instanceof OnceOnlyError) return error.code;
  if (typeof code === 'string' && /^[\w.-]{1,64}$/.test(code)) return code;
  return /^[\w.-]{1,64}$/.test(error.name) ? error.name : 'Error';
}

function safeId(id: unknown): string {
  return typeof id === 'string' ? id.slice(0, 64) : String(id).slice(0, 64);
}
