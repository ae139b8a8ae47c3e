export type {
  ClaimRequest,
  ClaimResult,
  CompleteRequest,
  DedupRecord,
  DedupStore,
  ExtendRequest,
  FailRequest,
  MarkAdvance,
  MarkRange,
  MarkRef,
  MarkStore,
  OwnedRef,
  PositionedClaimRequest,
  RecordState,
  ResetReportingStore,
  StoreResetEvent,
  TransactionalCompleteRequest,
  TransactionalStore,
  TransactionalWork,
  TransitionResult,
  TxOf,
} from './store/store.js';
export { advanceMark, isTransactional, MAX_WINDOW_MS, reportsResets, supportsMarks } from './store/store.js';
export { MemoryStore, type MemoryStoreOptions, type MemoryStoreStats } from './store/memory-store.js';
export { coalesceStore } from './store/coalescing-store.js';
export type {
  AdminCountOptions,
  AdminCounts,
  AdminEntry,
  AdminListOptions,
  AdminPage,
  AdminPurgeProgress,
  AdminPurgeResult,
  AdminPurgeScopeOptions,
  AdminRecord,
  AdminRecordState,
  AdminStore,
} from './store/admin.js';
export {
  ADMIN_RECORD_STATES,
  adminCountOptionsSchema,
  adminListOptionsSchema,
  adminPurgeScopeOptionsSchema,
  MAX_ADMIN_BATCH,
  parseAdminCountOptions,
  parseAdminListOptions,
  parseAdminPurgeScopeOptions,
  supportsAdmin,
} from './store/admin.js';
export {
  CallbackError,
  type CallbackName,
  ErrorCode,
  FingerprintError,
  HandlerTimeoutError,
  ProcessorClosedError,
  InProgressError,
  InvalidIdError,
  InvalidOptionsError,
  LeaseLostError,
  OnceOnlyError,
  PayloadConflictError,
  RecordedFailureError,
  ResultSerializationError,
  StoreUnavailableError,
  TakeoverDeadLetterError,
  toError,
  type OnceOnlyErrorOptions,
} from './errors.js';
export { DEFAULT_MAX_ID_BYTES, validateId } from './ids/validate-id.js';
export { uuidv7, uuidv7Timestamp } from './ids/uuidv7.js';
export { canonicalJson } from './ids/canonical-json.js';
export { contentId, fingerprintOf } from './ids/content-id.js';
export { DedupProcessor, type CloseOptions, type ProcessOptions, type ProcessorStats } from './processor/dedup-processor.js';
export { DEAD_LETTERED, type BatchMark, type BatchMessage, type BatchOptions, type PoisonInfo } from './processor/batch-runner.js';
export {
  processorOptionsSchema,
  parseOptions,
  type DedupProcessorOptions,
  type ResolvedProcessorOptions,
  type ReconcileDecision,
  type SingleFlight,
  type TakeoverPolicy,
} from './processor/options.js';
export type { BaseHandlerContext, Handler, HandlerContext, Message, TakeoverContext } from './processor/context.js';
export type { Instrumentation, MessageInfo, MessageTrace } from './processor/instrumentation.js';
export type { ProcessorEvents } from './processor/events.js';
export {
  DuplicateRateMonitor,
  type DuplicateRateEvents,
  type DuplicateRateHighEvent,
  type DuplicateRateMonitorOptions,
  type DuplicateRateSnapshot,
  type DuplicateRateZeroEvent,
  type OutcomeSource,
} from './processor/duplicate-rate-monitor.js';
export {
  isDone,
  type BatchResult,
  type ConflictOutcome,
  type DeadLetteredOutcome,
  type DuplicateOutcome,
  type FailedOutcome,
  type InProgressOutcome,
  type LeaseLostOutcome,
  type Outcome,
  type OutcomeStatus,
  type ProcessedOutcome,
  type StoreUnavailableOutcome,
} from './processor/outcome.js';
