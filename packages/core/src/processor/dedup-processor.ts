import {
  CallbackError,
  FingerprintError,
  HandlerTimeoutError,
  InProgressError,
  InvalidIdError,
  LeaseLostError,
  OnceOnlyError,
  PayloadConflictError,
  ProcessorClosedError,
  RecordedFailureError,
  ResultSerializationError,
  StoreUnavailableError,
  TakeoverDeadLetterError,
  toError,
} from '../errors.js';
import { fingerprintOf } from '../ids/content-id.js';
import { validateId } from '../ids/validate-id.js';
import { MemoryStore } from '../store/memory-store.js';
import { Coalescer } from '../store/coalescing-store.js';
import { isTransactional, type ClaimRequest, type ClaimResult, type CompleteRequest, type DedupRecord, type DedupStore, type PositionedClaimRequest, type TransactionalStore, type TransitionResult, type TxOf } from '../store/store.js';
import type { BaseHandlerContext, Handler, Message } from './context.js';
import type { MessageInfo } from './instrumentation.js';
import { Emitter, type ProcessorEvents } from './events.js';
import { LeaseKeeper, type KeptLease } from './lease-keeper.js';
import { resolveProcessorOptions, type DedupProcessorOptions, type ResolvedProcessorOptions, type SingleFlight } from './options.js';
import { BatchRun, type BatchMessage, type BatchOptions } from './batch-runner.js';
import { ResetGuard } from './store-reset.js';
import type { AnyHandler, BatchHost, Prepared, Ran, ShadowReason } from './internal.js';
import type { BatchResult, FailedOutcome, InProgressOutcome, Outcome, OutcomeStatus, ProcessedOutcome } from './outcome.js';


/** Counters of everything a processor decided, for metrics. */
export type ProcessorStats = Record<OutcomeStatus, number> & {
  takeovers: number;
  failOpen: number;
  shadowed: number;
  storeErrors: number;
  /** Results that could not be recorded or read back (see the `result-error` event). */
  resultErrors: number;
  /** Handlers given up on after a timeout or close: their claims were left to expire. */
  abandoned: number;
  /** Times the store reported that it forgot this scope (see the `store-reset` event). */
  storeResets: number;
};

/** Per-call options of {@link DedupProcessor.process}. */
export interface ProcessOptions {
  /** Overrides the processor's `singleFlight` for this delivery. */
  readonly singleFlight?: SingleFlight;
}

/** Options of {@link DedupProcessor.close}. */
export interface CloseOptions {
  /**
   * How long running handlers may go on before their signals are aborted (with a `ProcessorClosedError`).
   * A handler that does not settle within 250 ms of the abort is given up on and its claim left to
   * expire. @defaultValue 0
   */
  readonly graceMs?: number;
}

const NEVER_ABORTED = new AbortController().signal;
// After aborting a handler (timeout, close), how long it may take to settle before it is given up on.
const ABANDON_AFTER_MS = 250;
// After close() aborted the handlers, how long it waits for their completions or releases to be recorded.
const CLOSE_SETTLE_MS = 2_000;

/**
 * Node 20 makes an AbortSignal in about 2.6 µs, a third of a `process()` call's CPU among 50 callers
 * on the memory store (Node 22: 0.12 µs, Node 24: 0.07 µs). There a context whose controller is the
 * handler's own reads the signal only when the handler does, through a getter, and the processor never
 * reads it on the way of a handler that finishes. The getter costs about 0.5 µs on Node 20 (an object
 * literal with an accessor): more than the signal on later versions, which get a plain field, and
 * more than reading a batch's shared controller, whose signal exists already.
 */
const READ_SIGNAL_LAZILY = Number(process.versions.node.split('.')[0]) < 22;

/** What a claimed run's handler receives, with `tx` for a transactional store. */
function handlerContext<P>(scope: string, p: Prepared<P>, token: number, controller: AbortController, own: boolean, takeover: boolean, tx?: unknown): BaseHandlerContext<P> {
  const context: BaseHandlerContext<P> & { tx?: unknown } = READ_SIGNAL_LAZILY && own
    ? {
        scope,
        id: p.id,
        payload: p.payload,
        token,
        get signal() {
          return controller.signal;
        },
        takeover,
        replayed: false,
      }
    : { scope, id: p.id, payload: p.payload, token, signal: controller.signal, takeover, replayed: false };
  if (tx !== undefined) context.tx = tx;
  return context;
}

/** How a handler invocation ended. */
type Invocation<R> = { readonly ok: true; readonly value: R } | { readonly ok: false; readonly error: unknown; readonly abandoned: boolean };

/** A handler running now: what close() and the timeout need to stop it. */
interface Running {
  readonly controller: AbortController;
  /** Why #stop aborted it (a timeout, close()), when its abort came first: see {@link handlerContext}. */
  stoppedWith?: Error;
  abandon: (reason: Error) => void;
}

/** A delivery this process is running, for single-flight. */
interface InFlight {
  readonly settled: Promise<unknown>;
  readonly startedAt: number;
  /** Set once the claim is acquired. */
  claim?: { token: number; leaseUntil: number };
}

const noop = (): void => undefined;
const isThenable = <R>(value: R | PromiseLike<R>): value is PromiseLike<R> =>
  (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as { then?: unknown }).then === 'function';
const invoked = <R>(value: R): Invocation<R> => ({ ok: true, value });
const threw = (error: unknown): Invocation<never> => ({ ok: false, error, abandoned: false });
const JSON_SERIALIZER = {
  serialize: (value: unknown) => JSON.stringify(value),
  deserialize: (text: string) => JSON.parse(text) as unknown,
};



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
export class DedupProcessor<S extends DedupStore = DedupStore> {
  readonly scope: string;
  readonly store: S;
  readonly options: Readonly<ResolvedProcessorOptions>;

  readonly #events = new Emitter<ProcessorEvents>();
  readonly #inflight = new Map<string, InFlight>();
  /** Handlers running now. */
  readonly #running = new Set<Running>();
  /** `process` and `processBatch` calls under way, so `close()` can let them record what they did. */
  readonly #calls = new Set<Promise<unknown>>();
  #closed = false;
  /** The steps a batch run uses (see batch-runner.ts). */
  readonly #host: BatchHost;
  readonly #leases: LeaseKeeper;
  readonly #ownsStore: boolean;
  /** Store resets: counted, reported, and (`onStoreReset: { failClosedMs }`) claims refused for a while. */
  readonly #resets: ResetGuard;
  /** Claims and completions of concurrent `process` calls, sent together (option `coalesce`). */
  readonly #claim: (request: ClaimRequest) => Promise<ClaimResult>;
  readonly #complete: (request: CompleteRequest) => Promise<TransitionResult>;
  /** The store, when it completes inside the handler's transaction. */
  readonly #transactional: TransactionalStore<unknown> | undefined;
  readonly #serializer: { serialize(value: unknown): string; deserialize(text: string): unknown };
  readonly #stats: ProcessorStats = {
    processed: 0,
    duplicate: 0,
    'in-progress': 0,
    conflict: 0,
    failed: 0,
    'lease-lost': 0,
    'store-unavailable': 0,
    'dead-lettered': 0,
    takeovers: 0,
    failOpen: 0,
    shadowed: 0,
    storeErrors: 0,
    resultErrors: 0,
    abandoned: 0,
    storeResets: 0,
  };

  /** @throws {InvalidOptionsError} naming each wrong option. */
  constructor(options: DedupProcessorOptions<S>) {
    this.options = resolveProcessorOptions(options);
    this.scope = this.options.scope;
    this.#ownsStore = this.options.store === undefined;
    this.store = (this.options.store ?? new MemoryStore()) as S;
    this.#transactional = isTransactional(this.store) ? this.store : undefined;
    this.#resets = new ResetGuard(this.store, this.scope, this.options.onStoreReset, (event) => {
      this.#stats.storeResets++;
      this.#events.emit('store-reset', event);
    });
    // Claims go through the guard (the store itself unless failing closed after a reset is asked for).
    const store = this.#resets.guard(this.store);
    if (this.options.coalesce) {
      const claims = new Coalescer(store.claim.bind(store), store.claimMany.bind(store));
      const completes = new Coalescer(store.complete.bind(store), store.completeMany.bind(store));
      this.#claim = (request) => claims.add(request);
      this.#complete = (request) => completes.add(request);
    } else {
      this.#claim = (request) => store.claim(request);
      this.#complete = (request) => store.complete(request);
    }
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
    this.#host = {
      scope: this.scope,
      store,
      options: this.options,
      isClosed: () => this.#closed,
      storeErrors: () => this.#stats.storeErrors,
      prepare: (message) => this.#prepare(message),
      invalid: (id, error) => this.#failed(safeId(id), error, true, false, false),
      claimRequest: (p) => this.#claimRequest(p),
      markedClaimRequest: (p, position) => this.#claimRequest(p, position),
      runClaimed: (p, token, takeover, handler, controller, shared, deferFailure) => this.#runClaimed(p, token, takeover, handler, controller, shared, deferFailure),
      answerExisting: (p, claim, handler) => this.#answerExisting(p, claim, handler),
      runUnprotected: (p, handler, why) => this.#runUnprotected(p, handler, why),
      repeatConflict: (p, record, handler) => this.#repeatConflict(p, record, handler),
      recordOf: (first, claim) => this.#recordOf(first, claim),
      completedRecord: (outcome) => this.#completedRecord(outcome),
      storeUnavailable: (id, thrown, handlerRan) => this.#storeUnavailable(id, thrown, handlerRan),
      leaseLost: (id, token, result) => this.#leaseLost(id, token, result),
      storeError: (id, operation, thrown) => this.#storeError(id, operation, thrown),
      withAttempts: (operation) => this.#withAttempts(operation),
      keepLease: (lease) => this.#leases.keep(lease),
      dropLease: (lease) => this.#leases.drop(lease),
      emit: (outcome) => this.#emit(outcome),
      messageInfo: (message) => this.#messageInfo(message),
      poisoned: ({ where, ...event }) => this.#events.emit('poisoned', { scope: this.scope, ...event, ...(where ? { where } : {}) }),
    };
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
  async process<P, R>(message: Message<P>, handler: Handler<P, R, TxOf<S>>, options?: ProcessOptions): Promise<Outcome<R>> {
    return this.#process(message, handler as AnyHandler<P, R>, options);
  }

  async #process<P, R>(message: Message<P>, handler: AnyHandler<P, R>, options: ProcessOptions | undefined): Promise<Outcome<R>> {
    if (this.#closed) return this.#emit(this.#closedOutcome(message));
    const instrumentation = this.options.instrumentation;
    if (instrumentation === undefined) return this.#processPrepared(message, handler, options);
    // Traced: the handler runs in the message's context, and its final outcome ends the trace.
    const trace = instrumentation.start(this.#messageInfo(message));
    if (trace === undefined) return this.#processPrepared(message, handler, options);
    const outcome = await this.#processPrepared(message, (context) => trace.run(() => handler(context)), options);
    trace.end(outcome);
    return outcome;
  }

  /** What an instrumentation is told about a message. */
  #messageInfo(message: Message<unknown>): MessageInfo {
    const info: { -readonly [K in keyof MessageInfo]: MessageInfo[K] } = { scope: this.scope, id: typeof message?.id === 'string' ? message.id : safeId(message?.id) };
    if (message?.carrier) info.carrier = message.carrier;
    if (message?.attributes) info.attributes = message.attributes;
    return info;
  }

  async #processPrepared<P, R>(message: Message<P>, handler: AnyHandler<P, R>, options: ProcessOptions | undefined): Promise<Outcome<R>> {
    const prepared = this.#prepare(message);
    if ('status' in prepared) return this.#emit(prepared);
    const mode = options?.singleFlight ?? this.options.singleFlight;
    if (mode === false || this.options.shadow) return this.#emit(await this.#track(this.#claimAndRun(prepared, handler, undefined)));

    // Single-flight: a second delivery of an ID this process is running waits for the first to settle,
    // then claims as usual (and finds it completed, or released), or answers in-progress at once.
    let entry: InFlight | undefined;
    if (mode === 'in-progress' && (entry = this.#inflight.get(prepared.id)) !== undefined) {
      return this.#emit(this.#runningHere(prepared.id, entry));
    }
    while ((entry = this.#inflight.get(prepared.id)) !== undefined) await entry.settled;
    const mine: { settled: Promise<Outcome<R>>; startedAt: number; claim?: InFlight['claim'] } = { settled: undefined!, startedAt: Date.now() };
    mine.settled = this.#track(this.#claimAndRun(prepared, handler, mine));
    this.#inflight.set(prepared.id, mine);
    try {
      return this.#emit(await mine.settled);
    } finally {
      if (this.#inflight.get(prepared.id) === mine) this.#inflight.delete(prepared.id);
    }
  }

  /**
   * The throwing form of {@link process}: resolves to the handler's result (or the recorded one for a
   * duplicate, `undefined` if results are not recorded) and throws a typed error otherwise:
   * `InProgressError`, `PayloadConflictError`, `LeaseLostError`, `StoreUnavailableError` (all but the
   * conflict are `retriable`), the recorded `RecordedFailureError` / `TakeoverDeadLetterError`, an
   * `InvalidIdError`, or the handler's own error.
   */
  async execute<P, R>(message: Message<P>, handler: Handler<P, R, TxOf<S>>, options?: ProcessOptions): Promise<R | undefined> {
    const outcome = await this.#process(message, handler as AnyHandler<P, R>, options);
    if (outcome.status === 'processed' || outcome.status === 'duplicate') return outcome.result;
    throw outcome.error;
  }

  /**
   * Processes a batch: one store round trip claims it (or each `claimChunk`), handlers run in order (or
   * `concurrency` at once, per-key order), and completions are sent in coalesced flushes as handlers
   * finish (a fast batch: one round trip). It stops starting messages at the first one that is not done,
   * releases the claims it will not finish, and reports how many leading messages are done (`onDone`
   * as it grows), so a consumer never commits past an unfinished one. Repeats of an ID inside the batch
   * are answered by their first occurrence; a repeat with a different payload is a conflict, as two
   * separate deliveries would be (`onConflict`). The batch also stops, before running anything more, as
   * soon as the store fails or reports itself unreachable (fail-closed). With `retry`, retryable handler
   * failures are retried in place; with `deadLetter`, messages that can never succeed are handed over
   * and the batch moves on (see {@link BatchOptions}).
   *
   * @param options.shouldContinue checked before each message; returning false (e.g. the batch went stale
   * after a rebalance) stops the batch there.
   * @param options.mark an offset high-water mark (Kafka: per group, topic and partition) with one
   * position per message, in order. With a store that supports marks it is read in the claim round trip
   * (messages inside it are answered as duplicates with `belowMark: true`, unless `skip` is false) and
   * advanced over the leading done messages in the completion round trip (from `from`, when positions
   * before the first message are known to hold nothing to process). Ignored by other stores.
   */
  async processBatch<P, R>(messages: readonly BatchMessage<P>[], handler: Handler<P, R, TxOf<S>>, options: BatchOptions<P> = {}): Promise<BatchResult<R>> {
    if (this.#closed) {
      const outcomes = messages.length > 0 ? [this.#emit(this.#closedOutcome(messages[0]!))] : [];
      return { outcomes, done: 0 };
    }
    return this.#track(new BatchRun<P, R>(this.#host, messages, handler as AnyHandler<P, R>, options).run());
  }

  /**
   * Stops the processor: new deliveries are refused (a retriable `ProcessorClosedError`), running
   * handlers get `graceMs` to finish, then their signals are aborted; a handler that still does not
   * settle is given up on (its claim left to expire). Then leases stop being kept and the store is
   * closed if the processor created it.
   */
  async close(options: CloseOptions = {}): Promise<void> {
    const graceMs = options.graceMs ?? 0;
    if (!(graceMs >= 0 && graceMs <= 2 ** 31 - 1)) {
      throw new RangeError(`DedupProcessor.close: "graceMs" must be a number of milliseconds from 0 to ${2 ** 31 - 1}, got ${String(graceMs)}`);
    }
    this.#closed = true;
    if (this.#calls.size > 0 && graceMs > 0) await settledWithin([...this.#calls], graceMs);
    if (this.#running.size > 0) {
      const reason = new ProcessorClosedError(`processor "${this.scope}" was closed while the handler ran`);
      for (const running of this.#running) this.#stop(running, reason);
    }
    if (this.#calls.size > 0) await settledWithin([...this.#calls], ABANDON_AFTER_MS + CLOSE_SETTLE_MS);
    this.#leases.stop();
    this.#resets.stop();
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
        fingerprint = option === 'auto' ? fingerprintOf(payload) : checkedFingerprint(option(payload));
      } catch (error) {
        const wrapped = error instanceof FingerprintError ? error : new FingerprintError(`fingerprint function threw: ${toError(error).message}`, { cause: error });
        return this.#failed(id, wrapped, true, false, false);
      }
    }
    return { id, payload, fingerprint };
  }

  /** The claim of a prepared message; with a `position`, the marked form (one object either way). */
  #claimRequest(p: Prepared<unknown>): ClaimRequest;
  #claimRequest(p: Prepared<unknown>, position: number): PositionedClaimRequest;
  #claimRequest(p: Prepared<unknown>, position?: number): ClaimRequest | PositionedClaimRequest {
    const { leaseMs, windowMs } = this.options;
    // Two literals rather than a copy: this runs once per message.
    if (position === undefined) return { scope: this.scope, id: p.id, fingerprint: p.fingerprint, leaseMs, windowMs };
    return { scope: this.scope, id: p.id, fingerprint: p.fingerprint, leaseMs, windowMs, position };
  }

  #completedRecord(outcome: ProcessedOutcome<unknown>): DedupRecord {
    const now = Date.now();
    const result = this.options.recordResults ? this.#serialize(outcome.id, outcome.result) : undefined;
    return { state: 'completed', token: outcome.token, claimedAt: now, updatedAt: now, ...(result === undefined ? {} : { result }) };
  }

  /** The record a repeat inside a batch is compared with: what its first occurrence claimed or found. */
  #recordOf(first: Prepared<unknown>, claim: ClaimResult | undefined): DedupRecord {
    if (claim !== undefined && claim.status !== 'acquired') return claim.record;
    const now = Date.now();
    return {
      state: 'in-progress',
      token: claim?.token ?? 0,
      claimedAt: now,
      updatedAt: now,
      ...(claim ? { leaseUntil: claim.leaseUntil } : {}),
      ...(first.fingerprint === undefined ? {} : { fingerprint: first.fingerprint }),
    };
  }

  /** A repeat inside a batch whose payload differs from its first occurrence's: the conflict policy decides. */
  async #repeatConflict<P, R>(p: Prepared<P>, record: DedupRecord, handler: AnyHandler<P, R>): Promise<Outcome<R>> {
    if (this.options.shadow) return this.#runUnprotected(p, handler, { shadowOf: 'conflict' });
    if (this.options.onConflict === 'process') return this.#runUnprotected(p, handler, { conflict: true });
    return this.#conflict(p.id, record);
  }

  /** A second delivery of an ID this process is running, answered without waiting (`singleFlight: 'in-progress'`). */
  #runningHere(id: string, entry: InFlight): InProgressOutcome {
    const leaseUntil = entry.claim?.leaseUntil ?? entry.startedAt + this.options.leaseMs;
    const record: DedupRecord = { state: 'in-progress', token: entry.claim?.token ?? 0, claimedAt: entry.startedAt, updatedAt: entry.startedAt, leaseUntil };
    const retryAfterMs = this.options.inProgressRetryMs;
    return {
      status: 'in-progress',
      scope: this.scope,
      id,
      replayed: false,
      record,
      retryAfterMs,
      error: new InProgressError(`"${id}" is being processed by this process (single-flight)`, retryAfterMs, { record }),
    };
  }

  async #claimAndRun<P, R>(p: Prepared<P>, handler: AnyHandler<P, R>, inflight: { claim?: InFlight['claim'] } | undefined): Promise<Outcome<R>> {
    let claim: ClaimResult;
    try {
      claim = await this.#claim(this.#claimRequest(p));
    } catch (thrown) {
      this.#storeError(p.id, 'claim', thrown);
      if (this.options.onStoreError === 'fail-open' || this.options.shadow) {
        return this.#runUnprotected(p, handler, { failOpen: toError(thrown) });
      }
      return this.#storeUnavailable(p.id, thrown, false);
    }
    if (claim.status !== 'acquired') return this.#answerExisting(p, claim, handler);
    if (inflight) inflight.claim = { token: claim.token, leaseUntil: claim.leaseUntil };

    const controller = new AbortController();
    const lease: KeptLease = { scope: this.scope, id: p.id, token: claim.token, controller, extendedAt: Date.now() };
    this.#leases.keep(lease);
    let ran: Ran<R>;
    try {
      ran = await this.#runClaimed(p, claim.token, claim.takeover, handler, controller, false);
    } finally {
      this.#leases.drop(lease);
    }
    if (ran.kind === 'outcome') return ran.outcome;

    let result = ran.completed; // a transactional store completed it with the handler's writes
    if (result === undefined) {
      try {
        result = await this.#withAttempts(() =>
          this.#complete({ scope: this.scope, id: p.id, token: claim.token, result: ran.serialized, windowMs: this.options.windowMs }),
        );
      } catch (thrown) {
        this.#storeError(p.id, 'complete', thrown);
        return this.#storeUnavailable(p.id, thrown, true);
      }
    }
    if (result === 'lease-lost') return this.#leaseLost(p.id, claim.token, ran.result);
    return { status: 'processed', scope: this.scope, id: p.id, replayed: false, result: ran.result, token: claim.token, takeover: claim.takeover };
  }

  /**
   * Runs the handler under an acquired claim (after applying the takeover policy). Answers `done` with
   * the result to complete, or a final outcome (failed, dead-lettered, reconciled, abandoned) with the
   * claim settled: completed, failed, released, or (abandoned) left to expire.
   * `shared`: the controller serves several claims (a batch), so a timeout must not abort it.
   * `deferFailure`: a terminal failure is released rather than recorded, for the caller to record once
   * it has dealt with it (a batch's dead-letter hook).
   */
  #runClaimed<P, R>(
    p: Prepared<P>,
    token: number,
    takeover: boolean,
    handler: AnyHandler<P, R>,
    controller: AbortController,
    shared: boolean,
    deferFailure = false,
  ): Ran<R> | Promise<Ran<R>> {
    if (takeover) return this.#runTakeover(p, token, handler, controller, shared, deferFailure);
    return this.#runHandler(p, token, false, handler, controller, shared, deferFailure);
  }

  /** A takeover's claim: the takeover policy decides whether the handler runs. */
  async #runTakeover<P, R>(
    p: Prepared<P>,
    token: number,
    handler: AnyHandler<P, R>,
    controller: AbortController,
    shared: boolean,
    deferFailure: boolean,
  ): Promise<Ran<R>> {
    const policy = this.options.onTakeover;
    this.#stats.takeovers++;
    this.#events.emit('takeover', { scope: this.scope, id: p.id, token, policy });
    if (policy === 'dead-letter') {
      const error = new TakeoverDeadLetterError(
        `"${p.id}" was claimed before and its lease expired mid-handler; the effect may or may not have happened (policy: dead-letter)`,
      );
      return { kind: 'outcome', outcome: await this.#settleFailure(p.id, token, error, true, deferFailure) };
    }
    if (policy === 'reconcile') {
      let decision: unknown;
      try {
        decision = await this.options.reconcile!({ scope: this.scope, id: p.id, payload: p.payload, token });
      } catch (thrown) {
        const error = new CallbackError('reconcile', `reconcile threw: ${toError(thrown).message}`, { cause: thrown });
        return { kind: 'outcome', outcome: await this.#settleFailure(p.id, token, error, false, deferFailure) };
      }
      if (decision !== 'done' && decision !== 'run') {
        const error = new CallbackError('reconcile', `reconcile must answer "done" or "run", got ${describe(decision)}`);
        return { kind: 'outcome', outcome: await this.#settleFailure(p.id, token, error, false, deferFailure) };
      }
      if (decision === 'done') return { kind: 'outcome', outcome: await this.#reconciledDone(p.id, token) };
    }
    return this.#runHandler(p, token, true, handler, controller, shared, deferFailure);
  }

  /**
   * Calls the handler under the claim. A handler that returns synchronously is answered synchronously
   * (no promise on the way), which is most of the processor's cost per message in a batch of fast handlers.
   */
  #runHandler<P, R>(
    p: Prepared<P>,
    token: number,
    takeover: boolean,
    handler: AnyHandler<P, R>,
    controller: AbortController,
    shared: boolean,
    deferFailure: boolean,
  ): Ran<R> | Promise<Ran<R>> {
    const transactional = this.#transactional;
    if (transactional) return this.#runInTransaction(transactional, p, token, takeover, handler, controller, shared, deferFailure);
    const invocation = this.#invoke(
      (controller, own) => handler(handlerContext(this.scope, p, token, controller, own, takeover)),
      controller,
      shared,
    );
    if (invocation instanceof Promise) return invocation.then((settled) => this.#ran(p.id, token, settled, deferFailure));
    return this.#ran(p.id, token, invocation, deferFailure);
  }

  /** What a non-transactional handler invocation gave: a result to complete, or a failure settled. */
  #ran<R>(id: string, token: number, invocation: Invocation<R>, deferFailure: boolean): Ran<R> | Promise<Ran<R>> {
    if (invocation.ok) {
      const serialized = this.options.recordResults ? this.#serialize(id, invocation.value) : undefined;
      return { kind: 'done', result: invocation.value, serialized };
    }
    return this.#afterFailure(id, token, invocation, deferFailure);
  }

  /**
   * The handler and the completion in one transaction of a transactional store: `done` carries the
   * completion's answer. A store failure rolled back the effect with the completion: the claim is
   * released (fenced, so harmless if the commit did go through) and the outcome is store-unavailable.
   */
  async #runInTransaction<P, R>(
    store: TransactionalStore<unknown>,
    p: Prepared<P>,
    token: number,
    takeover: boolean,
    handler: AnyHandler<P, R>,
    controller: AbortController,
    shared: boolean,
    deferFailure: boolean,
  ): Promise<Ran<R>> {
    const request = { scope: this.scope, id: p.id, token, windowMs: this.options.windowMs };
    let failedInStore: unknown;
    const invocation = await this.#invoke(
      (controller, own) =>
        store
          .completeWithin(request, async (tx) => {
            const value = await handler(handlerContext(this.scope, p, token, controller, own, takeover, tx));
            return { value, result: this.options.recordResults ? this.#serialize(p.id, value) : undefined };
          })
          .catch((thrown: unknown) => {
            if (thrown instanceof StoreUnavailableError) failedInStore = thrown;
            throw thrown;
          }),
      controller,
      shared,
    );
    if (invocation.ok) {
      const { transition, value } = invocation.value;
      return { kind: 'done', result: value, serialized: undefined, completed: transition };
    }
    if (failedInStore !== undefined && !invocation.abandoned) {
      this.#storeError(p.id, 'completeWithin', failedInStore);
      try {
        await this.store.release({ scope: this.scope, id: p.id, token });
      } catch (thrown) {
        this.#storeError(p.id, 'release', thrown); // the lease expires anyway
      }
      return { kind: 'outcome', outcome: this.#storeUnavailable(p.id, failedInStore, false) };
    }
    return this.#afterFailure(p.id, token, invocation, deferFailure);
  }

  /** A failed handler invocation: abandoned (claim left to expire), or judged terminal or not and settled. */
  async #afterFailure(id: string, token: number, invocation: Extract<Invocation<unknown>, { ok: false }>, deferFailure: boolean): Promise<Ran<never>> {
    const error = toError(invocation.error);
    if (invocation.abandoned) {
      // The handler may still apply its effect: leave the claim to expire, so the next claim is a takeover.
      this.#stats.abandoned++;
      return { kind: 'outcome', outcome: { ...this.#failed(id, error, false, false, false), abandoned: true } };
    }
    const judged = this.#judge(error);
    return { kind: 'outcome', outcome: await this.#settleFailure(id, token, judged.error, judged.terminal, deferFailure) };
  }

  async #reconciledDone(id: string, token: number): Promise<Outcome<never>> {
    let result: 'ok' | 'lease-lost';
    try {
      result = await this.#complete({ scope: this.scope, id, token, windowMs: this.options.windowMs });
    } catch (thrown) {
      this.#storeError(id, 'complete', thrown);
      return this.#storeUnavailable(id, thrown, false);
    }
    if (result === 'lease-lost') return this.#leaseLost(id, token, undefined as never);
    const now = Date.now();
    return { status: 'duplicate', scope: this.scope, id, replayed: true, result: undefined, record: { state: 'completed', token, claimedAt: now, updatedAt: now }, reconciled: true };
  }

  /**
   * Calls a handler so that it can be stopped: a timeout (`handlerTimeoutMs`) or `close()` aborts its
   * signal, and a handler that does not settle within {@link ABANDON_AFTER_MS} after that is given up on.
   * When it rejects after such an abort, the abort's reason is the error (the handler's is its cause).
   */
  #invoke<R>(run: (controller: AbortController, own: boolean) => R | Promise<R>, controller: AbortController, shared: boolean): Invocation<R> | Promise<Invocation<R>> {
    const timeoutMs = this.options.handlerTimeoutMs;
    let own = controller;
    let unlink: (() => void) | undefined;
    if (shared && timeoutMs !== undefined) {
      // A batch shares one controller for its leases: a timeout aborts only this handler's signal.
      own = new AbortController();
      const forward = () => own.abort(controller.signal.reason);
      if (controller.signal.aborted) forward();
      else {
        controller.signal.addEventListener('abort', forward, { once: true });
        unlink = () => controller.signal.removeEventListener('abort', forward);
      }
    }
    let returned: PromiseLike<R>;
    try {
      // `own`: the controller is this handler's alone (not a batch's), its signal not made yet.
      const value = run(own, own !== controller || !shared);
      // A handler that returned synchronously has finished: there is nothing to time out or abandon.
      if (!isThenable(value)) {
        unlink?.();
        return invoked(value);
      }
      returned = value;
    } catch (thrown) {
      unlink?.();
      return threw(thrown);
    }
    return this.#awaitHandler(returned, own, unlink);
  }

  /** The rest of {@link #invoke} for a handler that returned a promise (or another thenable). */
  async #awaitHandler<R>(returned: PromiseLike<R>, own: AbortController, unlink: (() => void) | undefined): Promise<Invocation<R>> {
    const timeoutMs = this.options.handlerTimeoutMs;
    // One promise settled by the handler or by abandonment, whichever comes first (no race, no second promise).
    const running: Running = { controller: own, abandon: noop };
    const settled = new Promise<Invocation<R>>((resolve) => {
      running.abandon = (reason) => resolve({ ok: false, error: reason, abandoned: true });
      // Promise.resolve adopts a foreign thenable safely (its `then` may throw); a native promise is kept as is.
      Promise.resolve(returned).then(
        (value) => resolve(invoked(value)),
        (error: unknown) => resolve(threw(error)),
      );
    });
    this.#running.add(running);
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => this.#stop(running, new HandlerTimeoutError(`handler ran longer than handlerTimeoutMs (${timeoutMs} ms)`, timeoutMs)), timeoutMs);
    timer?.unref?.();
    try {
      const invocation = await settled;
      const reason = running.stoppedWith;
      if (!invocation.ok && !invocation.abandoned && (reason instanceof HandlerTimeoutError || reason instanceof ProcessorClosedError)) {
        return { ok: false, error: reason === invocation.error ? reason : withCause(reason, invocation.error), abandoned: false };
      }
      return invocation;
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      this.#running.delete(running);
      unlink?.();
    }
  }

  /** Aborts a running handler, and gives up on it if it has not settled shortly after. */
  #stop(running: Running, reason: Error): void {
    if (!running.controller.signal.aborted) {
      running.stoppedWith = reason;
      running.controller.abort(reason);
    }
    const reasonNow = running.controller.signal.reason instanceof Error ? running.controller.signal.reason : reason;
    setTimeout(() => running.abandon(reasonNow), ABANDON_AFTER_MS).unref?.();
  }

  /** Answers a claim that found a record: duplicate, in progress, remembered failure or conflict. */
  async #answerExisting<P, R>(p: Prepared<P>, claim: Exclude<ClaimResult, { status: 'acquired' }>, handler: AnyHandler<P, R>): Promise<Outcome<R>> {
    const record = claim.record;
    // Compared only when both deliveries carry a payload: with none on either side the ID alone decides.
    const conflict = p.fingerprint !== undefined && record.fingerprint !== undefined && record.fingerprint !== p.fingerprint;
    if (this.options.shadow) {
      const wouldBe: ShadowReason = conflict ? 'conflict' : claim.status === 'completed' ? 'duplicate' : claim.status;
      return this.#runUnprotected(p, handler, { shadowOf: wouldBe });
    }
    if (conflict) {
      if (this.options.onConflict === 'reject') return this.#conflict(p.id, record);
      if (this.options.onConflict === 'process') return this.#runUnprotected(p, handler, { conflict: true });
    }
    if (claim.status === 'completed') {
      return {
        status: 'duplicate',
        scope: this.scope,
        id: p.id,
        replayed: true,
        result: record.result === undefined ? undefined : (this.#deserialize(p.id, record.result) as R),
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

  #conflict(id: string, record: DedupRecord): Outcome<never> {
    return {
      status: 'conflict',
      scope: this.scope,
      id,
      replayed: false,
      record,
      error: new PayloadConflictError(`"${id}" was seen before with a different payload (fingerprint mismatch)`, { record }),
    };
  }

  /** Runs the handler with no claim: fail-open, shadow mode, or `onConflict: 'process'`. */
  async #runUnprotected<P, R>(
    p: Prepared<P>,
    handler: AnyHandler<P, R>,
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
    const context: BaseHandlerContext<P> = {
      scope: this.scope,
      id: p.id,
      payload: p.payload,
      token: 0,
      signal: NEVER_ABORTED,
      takeover: false,
      replayed: false,
      ...(why.shadowOf ? { shadowOf: why.shadowOf } : {}),
    };
    const transactional = this.#transactional;
    try {
      const result = transactional ? await transactional.withTransaction((tx) => Promise.resolve(handler({ ...context, tx }))) : await handler(context);
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
      const judged = this.#judge(toError(thrown));
      return this.#failed(p.id, judged.error, judged.terminal, false, false);
    }
  }

  /** After a handler failure: remember it (terminal, if configured) or release the claim for a retry. */
  async #settleFailure(id: string, token: number, error: Error, terminal: boolean, deferFailure = false): Promise<FailedOutcome> {
    const remember = !deferFailure && terminal && (this.options.rememberFailures || error instanceof TakeoverDeadLetterError);
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

  /**
   * Whether a handler error is terminal: onceonly's own non-retriable errors always are (no redelivery
   * can fix them: e.g. a transaction the handler ended itself); others per `isTerminal`. A throwing
   * `isTerminal` makes it a retriable `CallbackError`.
   */
  #judge(error: Error): { error: Error; terminal: boolean } {
    if (error instanceof OnceOnlyError && !error.retriable) return { error, terminal: true };
    const isTerminal = this.options.isTerminal;
    if (!isTerminal) return { error, terminal: false };
    try {
      return { error, terminal: isTerminal(error) === true };
    } catch (thrown) {
      return {
        error: new CallbackError('isTerminal', `isTerminal threw (${toError(thrown).message}) judging the handler's error: ${error.message}`, { cause: thrown }),
        terminal: false,
      };
    }
  }

  /** The result as text for the store; `undefined` (and a `result-error` event) when it cannot be. */
  #serialize(id: string, value: unknown): string | undefined {
    if (value === undefined) return undefined;
    let text: unknown;
    try {
      text = this.#serializer.serialize(value);
    } catch (thrown) {
      this.#resultError(id, 'serialize', new ResultSerializationError(`the result could not be serialised and was not recorded: ${toError(thrown).message}`, { cause: thrown }));
      return undefined;
    }
    if (typeof text !== 'string') {
      this.#resultError(id, 'serialize', new ResultSerializationError(`the serializer answered ${describe(text)}, not a string; the result was not recorded`));
      return undefined;
    }
    return text;
  }

  #deserialize(id: string, text: string): unknown {
    try {
      return this.#serializer.deserialize(text);
    } catch (thrown) {
      this.#resultError(id, 'deserialize', new ResultSerializationError(`the recorded result could not be deserialised: ${toError(thrown).message}`, { cause: thrown }));
      return undefined;
    }
  }

  #resultError(id: string, operation: 'serialize' | 'deserialize', error: ResultSerializationError): void {
    this.#stats.resultErrors++;
    this.#events.emit('result-error', { scope: this.scope, id, operation, error });
  }

  #failed(id: string, error: Error, terminal: boolean, remembered: boolean, replayed: boolean): FailedOutcome {
    return { status: 'failed', scope: this.scope, id, replayed, error, terminal, remembered };
  }

  #closedOutcome(message: Message<unknown>): FailedOutcome {
    const id = typeof message?.id === 'string' ? message.id : safeId(message?.id);
    return this.#failed(id, new ProcessorClosedError(`processor "${this.scope}" is closed; the message was not processed`), false, false, false);
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

  /** Tracks a call so that `close()` can wait for it. */
  #track<T>(call: Promise<T>): Promise<T> {
    this.#calls.add(call);
    void call.finally(() => this.#calls.delete(call)).catch(() => undefined);
    return call;
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

/** A user fingerprint function's answer, checked: it is stored and compared as text. */
function checkedFingerprint(value: unknown): string {
  if (typeof value === 'string' && value.length > 0 && value.length <= MAX_FINGERPRINT_LENGTH) return value;
  throw new FingerprintError(`the fingerprint function must return a string of 1 to ${MAX_FINGERPRINT_LENGTH} characters, got ${describe(value)}`);
}
const MAX_FINGERPRINT_LENGTH = 512;

function describe(value: unknown): string {
  if (typeof value === 'string') return value.length > 40 ? `a string of ${value.length} characters` : JSON.stringify(value);
  return value === null ? 'null' : typeof value;
}

/** A copy of an abort reason with the handler's own error as its cause. */
function withCause(reason: HandlerTimeoutError | ProcessorClosedError, cause: unknown): Error {
  return reason instanceof HandlerTimeoutError
    ? new HandlerTimeoutError(reason.message, reason.timeoutMs, { cause })
    : new ProcessorClosedError(reason.message, { cause });
}

/** Resolves when every call has settled, or after `ms`, whichever comes first. */
async function settledWithin(calls: readonly Promise<unknown>[], ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  // Not unref'd: close() is awaited, and the process must not exit while it waits.
  const elapsed = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  await Promise.race([Promise.allSettled(calls), elapsed]);
  clearTimeout(timer);
}
