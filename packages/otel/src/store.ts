import type { Attributes, Histogram, MeterProvider } from '@opentelemetry/api';
import type { DedupStore } from '@onceonly/core';
import { ATTR, errorType, METRIC, STORE_DURATION_BUCKETS } from './names.js';
import { meterOf } from './providers.js';

/** Options of {@link instrumentStore}. */
export interface InstrumentStoreOptions {
  /** @defaultValue the global meter provider, as it is now */
  readonly meterProvider?: MeterProvider;
  /** The `onceonly.store` attribute. @defaultValue the store's class name (`RedisStore`, `MemoryStore`, `PostgresStore`…) */
  readonly name?: string;
}

/**
 * The store calls that are timed. `completeWithin` / `withTransaction` (a transactional store) are
 * not: they run the handler's own work inside their transaction.
 */
export const TIMED_STORE_OPERATIONS = [
  'claim',
  'claimMany',
  'extend',
  'extendMany',
  'complete',
  'completeMany',
  'release',
  'releaseMany',
  'fail',
  'get',
  'claimManyMarked',
  'completeManyMarked',
  'getMark',
  'deleteMark',
] as const;

type AnyMethod = (...args: unknown[]) => unknown;

function timed(method: AnyMethod, histogram: Histogram, attributes: Attributes): AnyMethod {
  // A failing SDK must never turn a store answer into an error.
  const record = (started: number, error?: unknown) => {
    try {
      histogram.record((performance.now() - started) / 1000, error === undefined ? attributes : { ...attributes, [ATTR.errorType]: errorType(error) });
    } catch {
      // skipped: telemetry only
    }
  };
  const failed = (started: number, error: unknown) => record(started, error ?? 'rejected');
  return (...args) => {
    const started = performance.now();
    let result: unknown;
    try {
      result = method(...args);
    } catch (error) {
      failed(started, error);
      throw error;
    }
    return (result as Promise<unknown>).then(
      (value) => {
        record(started);
        return value;
      },
      (error: unknown) => {
        failed(started, error);
        throw error;
      },
    );
  };
}

/**
 * A view of `store` that times each store call in `onceonly.store.operation.duration` (seconds, by
 * `onceonly.store` and `onceonly.store.operation`, with `error.type` when it failed). Everything else
 * is the store's own: optional capabilities stay visible (`maxDurationMs`, `isAvailable`, the offset
 * marks of a `MarkStore`, `completeWithin` of a `TransactionalStore`, `onReset`, the admin methods),
 * `instanceof` still holds, and methods are bound once, not on every access.
 *
 * With no meter provider registered (and none given) it returns `store` itself: no wrapper at all.
 *
 * @example
 * const store = instrumentStore(new RedisStore({ client }));
 * const processor = new DedupProcessor({ scope: 'emails', store, instrumentation: otelInstrumentation() });
 */
export function instrumentStore<S extends DedupStore>(store: S, options: InstrumentStoreOptions = {}): S {
  const meter = meterOf(options.meterProvider);
  if (meter === undefined) return store;
  const histogram = meter.createHistogram(METRIC.storeDuration, {
    description: 'Duration of store operations',
    unit: 's',
    advice: { explicitBucketBoundaries: STORE_DURATION_BUCKETS },
  });
  const name = options.name ?? ((store as object).constructor?.name || 'store');
  const wrapped = new Map<PropertyKey, AnyMethod>();
  for (const operation of TIMED_STORE_OPERATIONS) {
    const method: unknown = (store as unknown as Record<string, unknown>)[operation];
    if (typeof method !== 'function') continue;
    wrapped.set(operation, timed((method as AnyMethod).bind(store), histogram, { [ATTR.store]: name, [ATTR.storeOperation]: operation }));
  }
  // Every other method bound once to the store itself (private fields need the real `this`).
  const bound = new WeakMap<AnyMethod, AnyMethod>();
  return new Proxy(store, {
    get(target, property) {
      const timedMethod = wrapped.get(property);
      if (timedMethod !== undefined) return timedMethod;
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      let fn = bound.get(value as AnyMethod);
      if (fn === undefined) bound.set(value as AnyMethod, (fn = (value as AnyMethod).bind(target)));
      return fn;
    },
    set: (target, property, value) => Reflect.set(target, property, value, target),
  });
}
