// A transactional store for tests, shared by the core, BullMQ and Kafka unit tests: a MemoryStore
// whose transactions buffer their writes and append them to `ledger` only when the completion
// commits (a throw, or a fenced-out completion, rolls them back). The integration tests use the real
// PostgresStore.
import {
  MemoryStore,
  StoreUnavailableError,
  type TransactionalCompleteRequest,
  type TransactionalStore,
  type TransactionalWork,
  type TransitionResult,
} from '@onceonly/core';

/** A transaction: writes are buffered and reach the ledger only on commit. */
export interface Tx {
  write(entry: string): void;
}

export class LedgerStore extends MemoryStore implements TransactionalStore<Tx> {
  readonly ledger: string[] = [];
  /** Transactions that ran a completion (committed or not). */
  transactions = 0;
  /** While true, opening a transaction fails as an unreachable database does. */
  down = false;

  async completeWithin<R>(request: TransactionalCompleteRequest, work: (tx: Tx) => Promise<TransactionalWork<R>>): Promise<{ transition: TransitionResult; value: R }> {
    if (this.down) throw new StoreUnavailableError('database unreachable (test)');
    this.transactions++;
    const pending: string[] = [];
    const { value, result } = await work({ write: (entry) => pending.push(entry) }); // a throw rolls back
    const transition = await this.complete({ ...request, result });
    if (transition === 'ok') this.ledger.push(...pending);
    return { transition, value };
  }

  async withTransaction<R>(work: (tx: Tx) => Promise<R>): Promise<R> {
    const pending: string[] = [];
    const value = await work({ write: (entry) => pending.push(entry) });
    this.ledger.push(...pending);
    return value;
  }
}
