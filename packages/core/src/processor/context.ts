import type { DedupRecord } from '../store/store.js';

/** A message to process: its ID (validated) and, optionally, its payload (fingerprinted, never stored). */
export interface Message<P = unknown> {
  readonly id: unknown;
  readonly payload?: P;
  /** Trace context carrier for an `instrumentation` (e.g. Kafka headers); never stored. */
  readonly carrier?: Readonly<Record<string, unknown>>;
  /** What an adapter knows about the message, for an `instrumentation` (messaging attributes). */
  readonly attributes?: Readonly<Record<string, string | number | boolean>>;
}

/** What a handler receives on a fresh run, whatever the store. */
export interface BaseHandlerContext<P = unknown> {
  readonly scope: string;
  readonly id: string;
  readonly payload: P | undefined;
  /**
   * The fencing token of this run's claim; it grows with every claim of the ID. Guard your own writes
   * with it (e.g. `UPDATE ... WHERE fence < $token`) so a stalled run cannot overwrite a newer one.
   * `0` when the handler runs without a claim (fail-open, shadow duplicates, conflict `process`).
   */
  readonly token: number;
  /** Fires when the lease is lost (another worker took the ID over, or it could not be extended). */
  readonly signal: AbortSignal;
  /** True when this run took over an expired lease: an earlier run may have applied the effect. */
  readonly takeover: boolean;
  /** Always false for a handler: it runs only on a fresh delivery. Events carry `replayed: true` for duplicates. */
  readonly replayed: false;
  /** In shadow mode: what onceonly would have done with this delivery, had it not been in shadow mode. */
  readonly shadowOf?: 'duplicate' | 'in-progress' | 'conflict' | 'failed';
}

/** What a `reconcile` function receives on a takeover. */
export interface TakeoverContext<P = unknown> {
  readonly scope: string;
  readonly id: string;
  readonly payload: P | undefined;
  /** The new claim's token (higher than the previous owner's). */
  readonly token: number;
}

/**
 * What a handler receives on a fresh run. With a transactional store (`Tx` is its transaction type,
 * e.g. a `pg` client inside `BEGIN`) it also has `tx`: run the effect's writes on it, and they commit
 * together with the completion, or not at all. With any other store there is no `tx`.
 */
export type HandlerContext<P = unknown, Tx = never> = BaseHandlerContext<P> & ([Tx] extends [never] ? unknown : { readonly tx: Tx });

export type Handler<P = unknown, R = unknown, Tx = never> = (context: HandlerContext<P, Tx>) => R | Promise<R>;

export type { DedupRecord };
