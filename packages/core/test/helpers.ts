import { MemoryStore, StoreUnavailableError, type DedupStore } from '@onceonly/core';

/** Wraps a store, counting calls per method, and can be switched to fail like an unreachable store. */
export function instrument(inner: DedupStore = new MemoryStore()) {
  const calls: Record<string, number> = {};
  const state = { down: false };
  const store = new Proxy(inner, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls[String(property)] = (calls[String(property)] ?? 0) + 1;
        if (state.down) return Promise.reject(new StoreUnavailableError('connection refused (test)'));
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { store, calls, state };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A promise with its resolve function, to hold a handler at a point of the test's choosing. */
export function gate<T = void>() {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => (open = resolve));
  return { promise, open };
}
