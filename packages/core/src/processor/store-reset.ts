// What the processor does when its store reports that it forgot the processor's scope (a reset):
// count it, tell the listeners, and, with `onStoreReset: { failClosedMs }`, refuse claims for a
// while. Not part of the public API.
import { StoreUnavailableError } from '../errors.js';
import { reportsResets, type ClaimResult, type DedupStore, type MarkStore, type OwnedRef, type StoreResetEvent } from '../store/store.js';

/** `onStoreReset`: carry on (the event and the counter are the alert), or fail closed for a while. */
export type StoreResetPolicy = 'continue' | { readonly failClosedMs: number };

/**
 * Listens to a store's resets for one scope. With a fail-closed policy, {@link ResetGuard.guard} gives
 * a view of the store whose claims throw a `StoreUnavailableError` until `failClosedMs` after the last
 * reset; a claim call that itself detected the reset gives back what it acquired and throws too. Every
 * other method goes to the store unchanged.
 */
export class ResetGuard {
  readonly #scope: string;
  readonly #failClosedMs: number;
  readonly #unsubscribe: () => void;
  #until = 0;

  constructor(store: DedupStore, scope: string, policy: StoreResetPolicy, onReset: (event: StoreResetEvent & { failClosedUntil?: number }) => void) {
    this.#scope = scope;
    this.#failClosedMs = policy === 'continue' ? 0 : policy.failClosedMs;
    this.#unsubscribe = reportsResets(store)
      ? store.onReset((event) => {
          if (event.scope !== this.#scope) return;
          if (this.#failClosedMs > 0) this.#until = Date.now() + this.#failClosedMs;
          onReset(this.#failClosedMs > 0 ? { ...event, failClosedUntil: this.#until } : event);
        })
      : () => {};
  }

  /** Stops listening. */
  stop(): void {
    this.#unsubscribe();
  }

  /** `store` itself, or (fail-closed policy, a store that reports resets) a view whose claims are guarded. */
  guard<S extends DedupStore>(store: S): S {
    if (this.#failClosedMs === 0 || !reportsResets(store)) return store;
    const guarded: Record<PropertyKey, unknown> = {
      claim: async (request: Parameters<DedupStore['claim']>[0]) => {
        this.#check();
        const result = await store.claim(request);
        await this.#after([{ scope: request.scope, id: request.id, claim: result }], store);
        return result;
      },
      claimMany: async (requests: Parameters<DedupStore['claimMany']>[0]) => {
        this.#check();
        const results = await store.claimMany(requests);
        await this.#after(requests.map((r, i) => ({ scope: r.scope, id: r.id, claim: results[i] })), store);
        return results;
      },
      claimManyMarked: async (...args: Parameters<MarkStore['claimManyMarked']>) => {
        this.#check();
        const answer = await (store as unknown as MarkStore).claimManyMarked(...args);
        await this.#after(args[1].map((r, i) => ({ scope: r.scope, id: r.id, claim: answer.claims[i] })), store);
        return answer;
      },
    };
    return new Proxy(store, {
      get(target, property) {
        if (Object.hasOwn(guarded, property) && typeof (target as unknown as Record<PropertyKey, unknown>)[property] === 'function') return guarded[property];
        const value = Reflect.get(target, property, target) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
  }

  #check(): void {
    const left = this.#until - Date.now();
    if (left > 0) {
      throw new StoreUnavailableError(`the store forgot scope "${this.#scope}" (a reset); claims fail closed for ${Math.ceil(left)} ms more (onStoreReset.failClosedMs)`);
    }
  }

  /** After a claim call: if it detected a reset (or one came meanwhile), gives back what it acquired and throws. */
  async #after(answers: readonly { scope: string; id: string; claim: ClaimResult | undefined }[], store: DedupStore): Promise<void> {
    if (this.#until <= Date.now()) return;
    const acquired: OwnedRef[] = [];
    for (const { scope, id, claim } of answers) if (claim?.status === 'acquired') acquired.push({ scope, id, token: claim.token });
    if (acquired.length > 0) await store.releaseMany(acquired).catch(() => undefined);
    this.#check();
  }
}
