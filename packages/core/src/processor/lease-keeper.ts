import { LeaseLostError, toError } from '../errors.js';
import type { DedupStore } from '../store/store.js';

/** One claim whose lease is being kept alive. */
export interface KeptLease {
  readonly scope: string;
  readonly id: string;
  readonly token: number;
  /** Aborted, with a `LeaseLostError` as reason, when the lease is lost. */
  readonly controller: AbortController;
  /** Local time of the last successful extension (or of the claim). */
  extendedAt: number;
}

export interface LeaseKeeperOptions {
  store: DedupStore;
  leaseMs: number;
  heartbeatMs: number;
  onLost: (lease: KeptLease, reason: string) => void;
  onStoreError: (lease: KeptLease, error: Error) => void;
}

/**
 * Extends the leases of every running handler of a processor with one timer and one `extendMany` per
 * tick for all leases that are due, so a message costs no timer of its own and a handler shorter than
 * the heartbeat costs no extra round trip. The timer runs only while leases are kept and never keeps
 * the process alive.
 */
export class LeaseKeeper {
  readonly #leases = new Set<KeptLease>();
  readonly #options: LeaseKeeperOptions;
  #timer: ReturnType<typeof setInterval> | undefined;
  #ticking = false;

  constructor(options: LeaseKeeperOptions) {
    this.#options = options;
  }

  get size(): number {
    return this.#leases.size;
  }

  keep(lease: KeptLease): void {
    this.#leases.add(lease);
    if (this.#timer === undefined) {
      // Ticking at half the heartbeat bounds the gap between extensions at 1.5 heartbeats (< lease).
      this.#timer = setInterval(() => void this.#tick(), Math.max(1, Math.floor(this.#options.heartbeatMs / 2)));
      this.#timer.unref?.();
    }
  }

  drop(lease: KeptLease): void {
    this.#leases.delete(lease);
    if (this.#leases.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  stop(): void {
    for (const lease of [...this.#leases]) this.drop(lease);
  }

  async #tick(): Promise<void> {
    if (this.#ticking) return; // a slow store: never stack extensions
    const { store, leaseMs, heartbeatMs } = this.#options;
    const startedAt = Date.now();
    const due = [...this.#leases].filter((lease) => startedAt - lease.extendedAt >= heartbeatMs);
    if (due.length === 0) return;
    this.#ticking = true;
    try {
      const results = await store.extendMany(due.map(({ scope, id, token }) => ({ scope, id, token, leaseMs })));
      results.forEach((result, i) => {
        const lease = due[i]!;
        if (result === 'ok') lease.extendedAt = startedAt;
        else this.#lose(lease, 'another owner took the ID over (stale fencing token)');
      });
    } catch (thrown) {
      const error = toError(thrown);
      const now = Date.now();
      for (const lease of due) {
        if (!this.#leases.has(lease)) continue;
        this.#options.onStoreError(lease, error);
        // Past the last known lease end, another worker may own the ID: tell the handler.
        if (now >= lease.extendedAt + leaseMs) this.#lose(lease, 'the lease could not be extended: store unreachable');
      }
    } finally {
      this.#ticking = false;
    }
  }

  #lose(lease: KeptLease, reason: string): void {
    if (!this.#leases.has(lease)) return;
    this.drop(lease);
    if (!lease.controller.signal.aborted) {
      lease.controller.abort(new LeaseLostError(`lease on "${lease.id}" lost: ${reason}`));
    }
    this.#options.onLost(lease, reason);
  }
}
