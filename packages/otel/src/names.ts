/**
 * Names of the metrics, span attributes and span events this package records. The `messaging.*` ones
 * are OpenTelemetry's messaging semantic conventions; the `onceonly.*` ones are this library's.
 */

/** The instrumentation scope (tracer and meter name). */
export const INSTRUMENTATION_NAME = '@onceonly/otel';
export const INSTRUMENTATION_VERSION = '0.1.0';

/** Metric names. In Prometheus, dots become underscores, counters end in `_total` and seconds in `_seconds`. */
export const METRIC = {
  /** Counter (`instrumentProcessor`): every outcome, by `onceonly.scope`, `onceonly.outcome`, `onceonly.replayed`. */
  outcomes: 'onceonly.outcomes',
  /** Histogram (s): one message from start to final outcome, claim and completion included (messaging conventions), by outcome. */
  processDuration: 'messaging.process.duration',
  /** Histogram (s): the handler alone, each run. */
  handlerDuration: 'onceonly.handler.duration',
  /** Asynchronous up-down counter: messages started and not yet ended, by scope. */
  inFlight: 'onceonly.messages.in_flight',
  /** Histogram (s): each store call, by `onceonly.store` and `onceonly.store.operation`. */
  storeDuration: 'onceonly.store.operation.duration',
  /** Counter: takeovers of expired leases, by scope and `onceonly.takeover.policy`. */
  takeovers: 'onceonly.takeovers',
  /** Counter: leases lost while the handler ran. */
  leasesLost: 'onceonly.leases.lost',
  /** Counter: handlers run unprotected because the store was down and `onStoreError: 'fail-open'`. */
  failOpen: 'onceonly.fail_open.runs',
  /** Counter: failed store operations, by scope, operation and `error.type`. */
  storeErrors: 'onceonly.store.errors',
  /** Counter: messages that can never succeed, by scope, `error.type` and `onceonly.dead_lettered`. */
  poisoned: 'onceonly.poisoned.messages',
  /** Counter: times the store forgot a scope (`store-reset`), by scope and `onceonly.reset.reason`. */
  storeResets: 'onceonly.store.resets',
  /** Counter: results that could not be recorded or read back, by scope and `onceonly.result.operation`. */
  resultErrors: 'onceonly.result.errors',
  /** Counter: shadow-mode runs that would have been suppressed, by scope and `onceonly.shadow.would_be`. */
  shadowed: 'onceonly.shadow.runs',
  /** Gauge (1): duplicates ÷ deliveries over the monitor's window, by scope. */
  duplicateRate: 'onceonly.duplicate.rate',
  /** Gauge: 1 while a duplicate-rate alert is in force, else 0, by scope and `onceonly.alert` (`high`, `zero`). */
  duplicateAlertActive: 'onceonly.duplicate.alert.active',
  /** Counter: duplicate-rate alerts raised, by scope and `onceonly.alert`. */
  duplicateAlerts: 'onceonly.duplicate.alerts',
} as const;

/** Attribute names. */
export const ATTR = {
  messagingSystem: 'messaging.system',
  operationName: 'messaging.operation.name',
  operationType: 'messaging.operation.type',
  destinationName: 'messaging.destination.name',
  consumerGroup: 'messaging.consumer.group.name',
  partition: 'messaging.destination.partition.id',
  messageId: 'messaging.message.id',
  errorType: 'error.type',
  scope: 'onceonly.scope',
  outcome: 'onceonly.outcome',
  replayed: 'onceonly.replayed',
  takeover: 'onceonly.takeover',
  token: 'onceonly.token',
  handlerRuns: 'onceonly.handler.runs',
  handlerRan: 'onceonly.handler_ran',
  belowMark: 'onceonly.below_mark',
  reconciled: 'onceonly.reconciled',
  failOpen: 'onceonly.fail_open',
  retryAfterMs: 'onceonly.retry_after_ms',
  store: 'onceonly.store',
  storeOperation: 'onceonly.store.operation',
  takeoverPolicy: 'onceonly.takeover.policy',
  deadLettered: 'onceonly.dead_lettered',
  resetReason: 'onceonly.reset.reason',
  resultOperation: 'onceonly.result.operation',
  shadowWouldBe: 'onceonly.shadow.would_be',
  alert: 'onceonly.alert',
} as const;

/** Events added to a message's span (with `instrumentProcessor`). */
export const SPAN_EVENT = {
  takeover: 'onceonly.takeover',
  leaseLost: 'onceonly.lease_lost',
  failOpen: 'onceonly.fail_open',
  storeError: 'onceonly.store_error',
  resultError: 'onceonly.result_error',
} as const;

/** Bucket boundaries (seconds) the messaging conventions advise for `messaging.process.duration`. */
export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

/** Store calls are faster: the same advice, starting at 100 µs. */
export const STORE_DURATION_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** `error.type` of an error: a onceonly error's `code`, else the error's name. Low cardinality, never the message. */
export function errorType(error: unknown): string {
  if (typeof error === 'object' && error !== null) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && /^[A-Z][A-Z0-9_]{1,63}$/.test(code)) return code;
    const name = (error as { name?: unknown }).name;
    if (typeof name === 'string' && name.length > 0 && name.length <= 64) return name;
  }
  return '_OTHER';
}
