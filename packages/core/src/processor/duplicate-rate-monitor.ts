import { InvalidOptionsError } from '../errors.js';
import { Emitter } from './events.js';
import type { Outcome } from './outcome.js';

/** Options of {@link DuplicateRateMonitor}. */
export interface DuplicateRateMonitorOptions {
  /** The sliding window the rate is measured over. @defaultValue 300000 (5 minutes) */
  readonly windowMs?: number;
  /** The `high` alert fires when the duplicate rate over the window exceeds this fraction. @defaultValue 0.1 */
  readonly threshold?: number;
  /** Deliveries the window must hold before its rate is judged (so 1 duplicate in 3 deliveries is not an alert). @defaultValue 100 */
  readonly minMessages?: number;
  /**
   * Where retries are known to happen (producers retry sends, BullMQ re-runs stalled jobs, consumers
   * rebalance), some deliveries must be duplicates: the `zero` alert fires when this many fresh
   * deliveries in a row of one scope had no duplicate among them. `false` turns it off. @defaultValue false
   */
  readonly expectDuplicates?: false | { readonly afterMessages?: number };
  /** The clock, in ms (tests). @defaultValue Date.now */
  readonly now?: () => number;
}

/** What the `high` alert (and its `cleared`) reports. */
export interface DuplicateRateHighEvent {
  readonly scope: string;
  /** Duplicates ÷ deliveries over the window (0 to 1). */
  readonly rate: number;
  readonly duplicates: number;
  /** Deliveries decided over the window: fresh (processed) plus duplicates. */
  readonly messages: number;
  readonly windowMs: number;
  readonly threshold: number;
}

/** What the `zero` alert reports. */
export interface DuplicateRateZeroEvent {
  readonly scope: string;
  /** Fresh deliveries in a row without a duplicate. */
  readonly messages: number;
}

/** Events of a {@link DuplicateRateMonitor}. */
export interface DuplicateRateEvents {
  /**
   * The duplicate rate of a scope exceeded `threshold` over the window: producers retry too hard, or a
   * redelivery timeout (BullMQ's lock duration, a consumer session, a producer's request timeout) is
   * shorter than the work takes. Once per episode.
   */
  high: (event: DuplicateRateHighEvent) => void;
  /**
   * `expectDuplicates.afterMessages` fresh deliveries in a row and not one duplicate, where retries
   * are known to happen: the IDs are most likely regenerated on every attempt (the stamp is broken).
   * Once per episode.
   */
  zero: (event: DuplicateRateZeroEvent) => void;
  /** An alert is over: the rate fell to half the threshold or below (`high`), or a duplicate arrived (`zero`). */
  cleared: (event: { readonly scope: string; readonly alert: 'high' | 'zero'; readonly rate: number; readonly messages: number }) => void;
}

/** One scope's figures, as {@link DuplicateRateMonitor.snapshot} reports them. */
export interface DuplicateRateSnapshot {
  readonly scope: string;
  /** Duplicates ÷ deliveries over the window; 0 when the window is empty. */
  readonly rate: number;
  readonly duplicates: number;
  readonly messages: number;
  /** Fresh deliveries since the last duplicate. */
  readonly sinceDuplicate: number;
  /** Alerts in force. */
  readonly high: boolean;
  readonly zero: boolean;
}

/** Something that emits outcomes: a `DedupProcessor`. */
export interface OutcomeSource {
  on(event: 'outcome', listener: (outcome: Outcome<unknown>) => void): () => void;
}

const BUCKETS = 10;

/** Per scope: a ring of time buckets over the window, and the run of fresh deliveries. */
class ScopeWindow {
  readonly epochs = new Float64Array(BUCKETS).fill(-1);
  readonly fresh = new Float64Array(BUCKETS);
  readonly dups = new Float64Array(BUCKETS);
  sinceDuplicate = 0;
  high = false;
  zero = false;
  /** Sums over the live buckets, refreshed by `totals`. */
  messages = 0;
  duplicates = 0;

  constructor(readonly scope: string) {}

  add(epoch: number, duplicate: boolean): void {
    const slot = epoch % BUCKETS;
    if (this.epochs[slot] !== epoch) {
      this.epochs[slot] = epoch;
      this.fresh[slot] = 0;
      this.dups[slot] = 0;
    }
    if (duplicate) this.dups[slot]!++;
    else this.fresh[slot]!++;
  }

  totals(epoch: number): void {
    let fresh = 0;
    let dups = 0;
    for (let slot = 0; slot < BUCKETS; slot++) {
      const e = this.epochs[slot]!;
      if (e > epoch - BUCKETS && e <= epoch) {
        fresh += this.fresh[slot]!;
        dups += this.dups[slot]!;
      }
    }
    this.messages = fresh + dups;
    this.duplicates = dups;
  }

  get rate(): number {
    return this.messages === 0 ? 0 : this.duplicates / this.messages;
  }
}

function checkNumber(name: string, value: number, min: number, max: number, integer: boolean): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    throw new InvalidOptionsError(`DuplicateRateMonitor: "${name}" must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

/**
 * Watches the duplicate rate of each scope over a sliding window, from the processors' `outcome`
 * events, and raises two alerts (events; `@onceonly/otel` turns them into metrics):
 *
 * - `high`: more than `threshold` (10 %) of the deliveries over the window were duplicates — producers
 *   retry too hard, or a redelivery timeout is shorter than the work takes.
 * - `zero` (with `expectDuplicates`): many fresh deliveries in a row and not one duplicate where
 *   retries are known to happen — IDs are regenerated on every attempt, so nothing is deduplicated.
 *
 * A delivery counts as a duplicate when its outcome is `duplicate` (or, in shadow mode, a run that
 * would have been one); as fresh when it is `processed`. Other outcomes (in progress, failed, store
 * unavailable…) are redelivered and decided later, so they are not counted. The work per outcome is a
 * few additions: no timer, no allocation.
 *
 * @example
 * const monitor = new DuplicateRateMonitor({ expectDuplicates: { afterMessages: 10_000 } });
 * monitor.watch(processor);
 * monitor.on('high', ({ scope, rate }) => log.warn(`${scope}: ${(rate * 100).toFixed(1)} % duplicates`));
 * monitor.on('zero', ({ scope }) => log.error(`${scope}: no duplicates at all; are IDs regenerated per retry?`));
 */
export class DuplicateRateMonitor {
  readonly windowMs: number;
  readonly threshold: number;
  readonly minMessages: number;
  /** Fresh deliveries in a row that raise `zero`; `undefined` when that alert is off. */
  readonly zeroAfter: number | undefined;
  readonly #bucketMs: number;
  readonly #now: () => number;
  readonly #scopes = new Map<string, ScopeWindow>();
  readonly #events = new Emitter<DuplicateRateEvents>();

  /** @throws {InvalidOptionsError} naming a wrong option. */
  constructor(options: DuplicateRateMonitorOptions = {}) {
    this.windowMs = checkNumber('windowMs', options.windowMs ?? 300_000, 100, 2 ** 31 - 1, true);
    this.threshold = checkNumber('threshold', options.threshold ?? 0.1, 0, 1, false);
    this.minMessages = checkNumber('minMessages', options.minMessages ?? 100, 1, Number.MAX_SAFE_INTEGER, true);
    const expect = options.expectDuplicates ?? false;
    if (expect !== false && (typeof expect !== 'object' || expect === null)) {
      throw new InvalidOptionsError('DuplicateRateMonitor: "expectDuplicates" must be false or { afterMessages? }');
    }
    this.zeroAfter = expect === false ? undefined : checkNumber('expectDuplicates.afterMessages', expect.afterMessages ?? 10_000, 1, Number.MAX_SAFE_INTEGER, true);
    if (options.now !== undefined && typeof options.now !== 'function') throw new InvalidOptionsError('DuplicateRateMonitor: "now" must be a function');
    this.#now = options.now ?? Date.now;
    this.#bucketMs = this.windowMs / BUCKETS;
  }

  /** Subscribes to the alerts; returns a function that unsubscribes. */
  on<K extends keyof DuplicateRateEvents>(event: K, listener: DuplicateRateEvents[K]): () => void {
    return this.#events.on(event, listener);
  }

  off<K extends keyof DuplicateRateEvents>(event: K, listener: DuplicateRateEvents[K]): void {
    this.#events.off(event, listener);
  }

  /** Watches a processor's outcomes; returns a function that stops watching it. */
  watch(processor: OutcomeSource): () => void {
    return processor.on('outcome', (outcome) => this.observe(outcome));
  }

  /** Counts one outcome (what `watch` does for every outcome of the processor). */
  observe(outcome: Outcome<unknown>): void {
    let duplicate: boolean;
    if (outcome.status === 'duplicate') duplicate = true;
    else if (outcome.status === 'processed') duplicate = outcome.shadowOf === 'duplicate';
    else return;
    let window = this.#scopes.get(outcome.scope);
    if (window === undefined) this.#scopes.set(outcome.scope, (window = new ScopeWindow(outcome.scope)));
    const epoch = Math.floor(this.#now() / this.#bucketMs);
    window.add(epoch, duplicate);
    window.totals(epoch);

    if (duplicate) {
      window.sinceDuplicate = 0;
      if (window.zero) {
        window.zero = false;
        this.#events.emit('cleared', { scope: window.scope, alert: 'zero', rate: window.rate, messages: window.messages });
      }
    } else if (++window.sinceDuplicate === this.zeroAfter && !window.zero) {
      window.zero = true;
      this.#events.emit('zero', { scope: window.scope, messages: window.sinceDuplicate });
    }

    if (!window.high) {
      if (window.messages >= this.minMessages && window.rate > this.threshold) {
        window.high = true;
        this.#events.emit('high', this.#highEvent(window));
      }
    } else if (window.rate <= this.threshold / 2) {
      window.high = false;
      this.#events.emit('cleared', { scope: window.scope, alert: 'high', rate: window.rate, messages: window.messages });
    }
  }

  /** Each scope's rate over the window ending now, and the alerts in force. */
  snapshot(): DuplicateRateSnapshot[] {
    const epoch = Math.floor(this.#now() / this.#bucketMs);
    return [...this.#scopes.values()].map((window) => {
      window.totals(epoch);
      const { scope, duplicates, messages, sinceDuplicate, high, zero } = window;
      return { scope, rate: window.rate, duplicates, messages, sinceDuplicate, high, zero };
    });
  }

  #highEvent(window: ScopeWindow): DuplicateRateHighEvent {
    return { scope: window.scope, rate: window.rate, duplicates: window.duplicates, messages: window.messages, windowMs: this.windowMs, threshold: this.threshold };
  }
}
