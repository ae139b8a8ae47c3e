import type { ResultSerializationError } from '../errors.js';
import type { Outcome } from './outcome.js';

/** Events a processor emits. Listeners run synchronously; one that throws is reported once as a warning. */
export interface ProcessorEvents {
  /** Every outcome of every message, fresh or replayed. */
  outcome: (outcome: Outcome<unknown>) => void;
  /** A claim took over an expired lease; `policy` is what was done about it. */
  takeover: (event: { scope: string; id: string; token: number; policy: 'retry' | 'reconcile' | 'dead-letter' }) => void;
  /** The handler's lease was lost while it ran (its signal fired). */
  'lease-lost': (event: { scope: string; id: string; token: number; reason: string }) => void;
  /** Shadow mode: a delivery that would have been suppressed ran anyway. */
  shadow: (event: { scope: string; id: string; wouldBe: 'duplicate' | 'in-progress' | 'conflict' | 'failed' }) => void;
  /** The store was unreachable and `fail-open` ran the handler unprotected. */
  'fail-open': (event: { scope: string; id: string; error: Error }) => void;
  /**
   * Every store operation that failed: a claim or completion (the outcome is then `store-unavailable`,
   * or fail-open), a heartbeat, a release. `id` is the (first) message concerned.
   */
  'store-error': (event: { scope: string; id: string; operation: string; error: Error }) => void;
  /**
   * A message that can never succeed (bad ID, conflict, remembered failure, dead-lettered takeover,
   * terminal error, retries exhausted) met a batch: handed to its dead-letter hook (`deadLettered`), or,
   * without one, it stops the batch (and the consumer) until someone deals with it.
   */
  poisoned: (event: {
    scope: string;
    id: string;
    error: Error;
    attempts: number;
    deadLettered: boolean;
    /** Where the message came from, as the adapter said (Kafka: topic, partition, offset). */
    where?: Readonly<Record<string, string | number>>;
  }) => void;
  /**
   * The store forgot this scope (see `StoreResetEvent`): IDs completed before it will run again if
   * delivered again within their window. Once per loss and store. `failClosedUntil` (ms since the
   * epoch, local clock) with `onStoreReset: { failClosedMs }`: claims answer `store-unavailable` until then.
   */
  'store-reset': (event: {
    scope: string;
    reason: 'missing' | 'changed';
    previousEpoch: string;
    epoch: string;
    failClosedUntil?: number;
  }) => void;
  /** A result could not be recorded (`serialize`: the record is completed without it) or read back (`deserialize`: the duplicate answers `undefined`). */
  'result-error': (event: { scope: string; id: string; operation: 'serialize' | 'deserialize'; error: ResultSerializationError }) => void;
}

type Listener = (...args: never[]) => void;

/** A minimal typed emitter: no dependency on node:events, and a throwing listener never breaks processing. */
export class Emitter<Events extends { [K in keyof Events]: Listener }> {
  readonly #listeners = new Map<keyof Events, Set<Listener>>();
  #warned = false;

  on<K extends keyof Events>(event: K, listener: Events[K]): () => void {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => this.off(event, listener);
  }

  off<K extends keyof Events>(event: K, listener: Events[K]): void {
    this.#listeners.get(event)?.delete(listener);
  }

  /** True when someone listens, so callers can skip building an event nobody reads. */
  has(event: keyof Events): boolean {
    return (this.#listeners.get(event)?.size ?? 0) > 0;
  }

  emit<K extends keyof Events>(event: K, ...args: Parameters<Events[K]>): void {
    const set = this.#listeners.get(event);
    if (!set) return;
    for (const listener of set) {
      try {
        (listener as (...a: Parameters<Events[K]>) => void)(...args);
      } catch (error) {
        if (!this.#warned) {
          this.#warned = true;
          process.emitWarning(`onceonly: a "${String(event)}" listener threw: ${(error as Error)?.message ?? error}`);
        }
      }
    }
  }
}
