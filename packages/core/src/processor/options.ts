import { z } from 'zod';
import { InvalidOptionsError } from '../errors.js';
import { DEFAULT_MAX_ID_BYTES } from '../ids/validate-id.js';
import { MAX_WINDOW_MS, type DedupStore } from '../store/store.js';
import type { TakeoverContext } from './context.js';
import type { Instrumentation } from './instrumentation.js';

const isFunction = (value: unknown) => typeof value === 'function';
const fn = <T>(what: string) => z.custom<T>(isFunction, { message: `must be a function (${what})` });

const storeSchema = z.custom<DedupStore>(
  (value) =>
    typeof value === 'object' &&
    value !== null &&
    ['claim', 'claimMany', 'extend', 'extendMany', 'complete', 'completeMany', 'release', 'releaseMany', 'fail', 'get'].every(
      (method) => isFunction((value as Record<string, unknown>)[method]),
    ),
  { message: 'must implement the DedupStore interface (claim, claimMany, extend, complete, release, fail, get, ...)' },
);

const HOUR = 3_600_000;
// The longest delay a Node timer can wait; beyond it setTimeout fires at once.
const MAX_TIMER_MS = 2 ** 31 - 1;
const maxWindow = `must be at most ${MAX_WINDOW_MS} ms (10 years)`;

/** What a delivery does while this process runs the same ID: see `singleFlight`. */
export type SingleFlight = 'wait' | 'in-progress' | false;

/** What to do when a claim finds an expired lease, i.e. an earlier run died or stalled mid-handler. */
export type TakeoverPolicy = 'retry' | 'reconcile' | 'dead-letter';
/** The answer of a `reconcile` function: the effect is already applied (`done`) or must run (`run`). */
export type ReconcileDecision = 'done' | 'run';

/** The options schema. Types come from it; every default is stated here once. */
export const processorOptionsSchema = z
  .object({
    /** Who is deduplicating: a handler, consumer group or queue. The same ID in two scopes is two records. */
    scope: z
      .string()
      .min(1, 'must be a non-empty string')
      .max(200, 'must be at most 200 characters')
      .refine((s) => !/[\u0000-\u001f\u007f]/.test(s), 'must not contain control characters'),
    /** The store. @defaultValue a new `MemoryStore` (one process only). */
    store: storeSchema.optional(),
    /** How long a completed (or remembered failed) record is kept. After it, the ID is new again. @defaultValue 24 h */
    windowMs: z.number().int().positive().max(MAX_WINDOW_MS, maxWindow).default(24 * HOUR),
    /** Lease on an ID while its handler runs; extended by a heartbeat. @defaultValue 30 s */
    leaseMs: z.number().int().min(10, 'must be at least 10 ms').max(MAX_WINDOW_MS, maxWindow).default(30_000),
    /** How often the lease is extended. @defaultValue leaseMs / 3, at most 2^31 - 1 ms (a Node timer's limit) */
    heartbeatMs: z.number().int().positive().max(MAX_TIMER_MS, `must be at most ${MAX_TIMER_MS} ms (a Node timer's limit)`).optional(),
    /**
     * A handler running longer is aborted: its `signal` fires with a `HandlerTimeoutError`. If it then
     * settles, the usual path applies (a rejection releases the claim, or fails it per `isTerminal`);
     * if it does not settle within 250 ms, the outcome is `failed` (retriable) and the claim is left to
     * expire, so the next delivery is a takeover and `onTakeover` decides. @defaultValue none
     */
    handlerTimeoutMs: z.number().int().positive().max(MAX_TIMER_MS, `must be at most ${MAX_TIMER_MS} ms (a Node timer's limit)`).optional(),
    /** Upper bound of an ID's UTF-8 length. @defaultValue 256 */
    maxIdBytes: z.number().int().min(1).max(4096).default(DEFAULT_MAX_ID_BYTES),
    /**
     * Payload fingerprint kept on each record, to spot the same ID arriving with a different payload.
     * `'auto'` hashes the payload (bytes, string, or canonical JSON) when one is given; `false` turns it
     * off; a function computes it. @defaultValue 'auto'
     */
    fingerprint: z.union([z.literal('auto'), z.literal(false), fn<(payload: unknown) => string>('payload => string')]).default('auto'),
    /** Same ID, different fingerprint: `reject` (typed error), treat as `duplicate`, or `process` anyway. @defaultValue 'reject' */
    onConflict: z.enum(['reject', 'duplicate', 'process']).default('reject'),
    /** Expired lease found at claim: run again (`retry`), ask `reconcile`, or `dead-letter`. @defaultValue 'retry' */
    onTakeover: z.enum(['retry', 'reconcile', 'dead-letter']).default('retry'),
    /** Required with `onTakeover: 'reconcile'`: checks downstream whether the earlier run's effect happened. */
    reconcile: fn<(context: TakeoverContext) => ReconcileDecision | Promise<ReconcileDecision>>('context => "done" | "run"').optional(),
    /** Keep each handler's result so duplicates are answered with it. @defaultValue false */
    recordResults: z.boolean().default(false),
    /** How results are turned into text for the store. @defaultValue JSON */
    serializer: z
      .object({
        serialize: fn<(value: unknown) => string>('value => string'),
        deserialize: fn<(text: string) => unknown>('text => value'),
      })
      .optional(),
    /** Whether a handler error is terminal (no retry will help). @defaultValue never: every error is retryable */
    isTerminal: fn<(error: Error) => boolean>('error => boolean').optional(),
    /** Remember terminal failures for the window, so redeliveries fail without running. @defaultValue false */
    rememberFailures: z.boolean().default(false),
    /**
     * Store unreachable: `fail-closed` throws a retriable error and runs nothing; `fail-open` runs the
     * handler unprotected and counts it. @defaultValue 'fail-closed'
     */
    onStoreError: z.enum(['fail-closed', 'fail-open']).default('fail-closed'),
    /**
     * The store reported that it forgot this scope (a reset: Redis restarted without persistence, a
     * `FLUSHALL`, a failover to an empty replica; see the `store-reset` event). `'continue'` carries on
     * (the event and the `storeResets` counter are the alert); `{ failClosedMs }` makes claims answer
     * `store-unavailable` for that long (as `onStoreError` then says), so handlers that were running
     * when the store forgot their claims finish before a redelivery can start the same ID again.
     * Stores that cannot tell ignore it. @defaultValue 'continue'
     */
    onStoreReset: z
      .union([
        z.literal('continue'),
        z.strictObject({ failClosedMs: z.number().int().positive().max(MAX_TIMER_MS, `must be at most ${MAX_TIMER_MS} ms`) }),
      ])
      .default('continue'),
    /** Detect and report duplicates without suppressing them (for a safe rollout). @defaultValue false */
    shadow: z.boolean().default(false),
    /**
     * A duplicate arriving in this process while the first is running: `'wait'` (or `true`) waits for
     * the first's outcome, `'in-progress'` answers an `in-progress` outcome at once (for brokers that
     * can park it, like BullMQ's delayed jobs), `false` claims in the store as any other worker would.
     * `process()` can override it per call. @defaultValue 'wait'
     */
    singleFlight: z
      .union([z.boolean(), z.enum(['wait', 'in-progress'])])
      .default('wait')
      .transform((value): SingleFlight => (value === true ? 'wait' : value)),
    /**
     * Concurrent `process`/`execute` calls share store round trips: a claim or completion goes out at
     * once when none of its kind is in flight; those made meanwhile travel together as one
     * `claimMany`/`completeMany`. Each caller still waits for its own answer. @defaultValue true
     */
    coalesce: z.boolean().default(true),
    /** Observes each message (e.g. `@onceonly/otel`'s spans). @defaultValue none: no tracing work at all */
    instrumentation: z
      .custom<Instrumentation>((v) => typeof (v as { start?: unknown } | null)?.start === 'function', { message: 'must have a start(message) function' })
      .optional(),
    /** Upper bound of the suggested wait before retrying an in-progress message. @defaultValue 1000 */
    inProgressRetryMs: z.number().int().positive().max(MAX_TIMER_MS, `must be at most ${MAX_TIMER_MS} ms`).default(1_000),
    /** Attempts at recording a completion when the store errors after the handler ran. @defaultValue 3 */
    completeAttempts: z.number().int().min(1).max(10).default(3),
  })
  .strict()
  .superRefine((options, ctx) => {
    const storeMax = options.store?.maxDurationMs;
    if (typeof storeMax === 'number') {
      for (const name of ['windowMs', 'leaseMs'] as const) {
        if (options[name] > storeMax) {
          ctx.addIssue({ code: 'custom', path: [name], message: `must be at most ${storeMax} ms: the longest duration the store can keep` });
        }
      }
    }
    if (options.leaseMs >= options.windowMs) {
      ctx.addIssue({ code: 'custom', path: ['leaseMs'], message: `must be lower than windowMs (${options.windowMs})` });
    }
    if (options.heartbeatMs !== undefined && options.heartbeatMs >= options.leaseMs) {
      ctx.addIssue({ code: 'custom', path: ['heartbeatMs'], message: `must be lower than leaseMs (${options.leaseMs})` });
    }
    if (options.onTakeover === 'reconcile' && !options.reconcile) {
      ctx.addIssue({ code: 'custom', path: ['reconcile'], message: 'is required when onTakeover is "reconcile"' });
    }
    if (options.reconcile && options.onTakeover !== 'reconcile') {
      ctx.addIssue({ code: 'custom', path: ['onTakeover'], message: 'must be "reconcile" when a reconcile function is given' });
    }
  });

/** Options accepted by `new DedupProcessor(...)`; `S` is the store's type (it decides whether handlers get a `tx`). */
export type DedupProcessorOptions<S extends DedupStore = DedupStore> = Omit<z.input<typeof processorOptionsSchema>, 'store'> & {
  /** The store. @defaultValue a new `MemoryStore` (one process only). */
  store?: S;
};
/** Options after validation and defaults. */
export type ResolvedProcessorOptions = z.output<typeof processorOptionsSchema> & { heartbeatMs: number };

/**
 * Validates options with zod, failing fast with every problem named by its option path.
 * @throws {InvalidOptionsError}
 */
export function parseOptions<T extends z.ZodType>(schema: T, input: unknown, owner: string): z.output<T> {
  const parsed = schema.safeParse(input ?? {});
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    const path = issue.path.length ? issue.path.join('.') : '(options)';
    const message =
      issue.code === 'unrecognized_keys' ? `unknown option(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}` : issue.message;
    return issue.code === 'unrecognized_keys' ? message : `"${path}" ${message}`;
  });
  throw new InvalidOptionsError(`invalid ${owner} options: ${problems.join('; ')}`, { cause: parsed.error });
}

export function resolveProcessorOptions(input: DedupProcessorOptions<DedupStore>): ResolvedProcessorOptions {
  const options = parseOptions(processorOptionsSchema, input, 'DedupProcessor');
  return { ...options, heartbeatMs: options.heartbeatMs ?? Math.min(MAX_TIMER_MS, Math.max(5, Math.floor(options.leaseMs / 3))) };
}
