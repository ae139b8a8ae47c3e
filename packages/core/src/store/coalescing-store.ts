import type { DedupStore } from './store.js';

/** Most requests sent in one batched call. */
const MAX_BATCH = 256;

interface Waiting<Q, A> {
  request: Q;
  resolve: (answer: A) => void;
  reject: (error: unknown) => void;
}

/**
 * Sends a call at once when none of its kind is in flight; calls made while one is in flight wait for it
 * and then travel together as one batch call. So a lone job pays no extra latency, and under load the
 * batches grow with the concurrency.
 */
export class Coalescer<Q, A> {
  #waiting: Waiting<Q, A>[] = [];
  #inFlight = false;

  constructor(
    private readonly one: (request: Q) => Promise<A>,
    private readonly many: (requests: Q[]) => Promise<A[]>,
  ) {}

  add(request: Q): Promise<A> {
    return new Promise<A>((resolve, reject) => {
      this.#waiting.push({ request, resolve, reject });
      if (!this.#inFlight) this.#flush();
    });
  }

  #flush(): void {
    const batch = this.#waiting.splice(0, MAX_BATCH);
    if (batch.length === 0) return;
    this.#inFlight = true;
    const sent =
      batch.length === 1
        ? this.one(batch[0]!.request).then((answer) => batch[0]!.resolve(answer))
        : this.many(batch.map((w) => w.request)).then((answers) => batch.forEach((w, i) => w.resolve(answers[i]!)));
    sent
      .catch((error: unknown) => batch.forEach((w) => w.reject(error)))
      .finally(() => {
        this.#inFlight = false;
        this.#flush();
      });
  }
}

/**
 * A view of `store` whose `claim` and `complete` calls made by concurrent jobs while an earlier one is
 * in flight travel together as one `claimMany` / `completeMany` round trip. Each caller still waits for its own
 * answer, so a completion is recorded before its job is acked, exactly as without coalescing.
 * Every other method (and any optional capability of the store) passes straight through.
 */
export function coalesceStore<S extends DedupStore>(store: S): S {
  const claims = new Coalescer(store.claim.bind(store), store.claimMany.bind(store));
  const completes = new Coalescer(store.complete.bind(store), store.completeMany.bind(store));
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'claim') return claims.add.bind(claims);
      if (prop === 'complete') return completes.add.bind(completes);
      const value = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
