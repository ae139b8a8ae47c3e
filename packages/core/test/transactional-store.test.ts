// The processor's side of transactional completion: with a store that completes inside the handler's
// transaction, the handler gets `tx`, the completion commits with its writes, a stale owner's writes
// roll back, and a failed handler's writes never land. The store here (./ledger-store.ts) keeps a ledger in memory
// with commit/rollback, to pin the processor's behaviour; the PostgreSQL store runs the same against a
// real database.
import { describe, expect, expectTypeOf, it } from 'vitest';
import { DedupProcessor, MemoryStore, OnceOnlyError } from '@onceonly/core';
import { LedgerStore, type Tx } from './ledger-store.js';

const scope = 'ledger';

describe('a transactional store', () => {
  it('gives the handler its transaction, typed; a plain store gives none', () => {
    const tx = new DedupProcessor({ scope, store: new LedgerStore() });
    void tx.process({ id: 'm' }, (ctx) => {
      expectTypeOf(ctx.tx).toEqualTypeOf<Tx>();
    });
    const plain = new DedupProcessor({ scope, store: new MemoryStore() });
    void plain.process({ id: 'm' }, (ctx) => {
      // @ts-expect-error no transaction without a transactional store
      void ctx.tx;
    });
  });

  it('commits the effect with the completion, once; a redelivery is a duplicate and writes nothing', async () => {
    const store = new LedgerStore();
    const p = new DedupProcessor({ scope, store, recordResults: true });
    const handler = async ({ id, tx }: { id: string; tx: Tx }) => {
      tx.write(`credit ${id}`);
      return 'credited';
    };
    expect(await p.process({ id: 'pay-1' }, handler)).toMatchObject({ status: 'processed', result: 'credited' });
    expect(await p.process({ id: 'pay-1' }, handler)).toMatchObject({ status: 'duplicate', result: 'credited' });
    expect(store.ledger).toEqual(['credit pay-1']);
    expect(await store.get(scope, 'pay-1')).toMatchObject({ state: 'completed', result: '"credited"' });
  });

  it('a stale owner (its lease taken over) cannot commit: its writes roll back, the new owner\'s stand', async () => {
    let now = Date.now();
    const store = new LedgerStore({ clock: () => now });
    const a = new DedupProcessor({ scope, store, leaseMs: 1_000, windowMs: 60_000, heartbeatMs: 500 });
    const b = new DedupProcessor({ scope, store, leaseMs: 1_000, windowMs: 60_000, heartbeatMs: 500 });
    let resumeA!: () => void;
    const aPaused = new Promise<void>((resolve) => (resumeA = resolve));
    const aRun = a.process({ id: 'pay-1' }, async ({ tx }) => {
      tx.write('A');
      await aPaused; // paused past its lease (e.g. SIGSTOP)
    });
    await new Promise((resolve) => setTimeout(resolve, 5));
    now += 5_000;
    const bOutcome = await b.process({ id: 'pay-1' }, async ({ tx, takeover }) => {
      tx.write('B');
      return takeover;
    });
    expect(bOutcome).toMatchObject({ status: 'processed', takeover: true });
    resumeA();
    expect(await aRun).toMatchObject({ status: 'lease-lost' });
    expect(store.ledger).toEqual(['B']);
  });

  it('a handler that throws leaves no write behind and releases the claim', async () => {
    const store = new LedgerStore();
    const p = new DedupProcessor({ scope, store });
    const failed = await p.process({ id: 'pay-1' }, async ({ tx }) => {
      tx.write('half');
      throw new Error('downstream 503');
    });
    expect(failed).toMatchObject({ status: 'failed', terminal: false });
    expect(store.ledger).toEqual([]);
    expect(await store.get(scope, 'pay-1')).toBeUndefined();
    expect((await p.process({ id: 'pay-1' }, async ({ tx }) => tx.write('full'))).status).toBe('processed');
    expect(store.ledger).toEqual(['full']);
  });

  it('the database down during the transaction: store-unavailable, nothing written, the claim released', async () => {
    const store = new LedgerStore();
    const p = new DedupProcessor({ scope, store });
    store.down = true;
    const outcome = await p.process({ id: 'pay-1' }, async ({ tx }) => tx.write('x'));
    expect(outcome).toMatchObject({ status: 'store-unavailable', handlerRan: false });
    expect(store.ledger).toEqual([]);
    store.down = false;
    expect((await p.process({ id: 'pay-1' }, async ({ tx }) => tx.write('y'))).status).toBe('processed');
    expect(store.ledger).toEqual(['y']);
  });

  it('a batch runs each message in its own transaction; a failure stops it with earlier ones committed', async () => {
    const store = new LedgerStore();
    const p = new DedupProcessor({ scope, store });
    const batch = await p.processBatch([{ id: 'a' }, { id: 'b' }, { id: 'c' }], async ({ id, tx }) => {
      tx.write(id);
      if (id === 'b') throw new Error('bad');
    });
    expect(batch.done).toBe(1);
    expect(batch.outcomes.map((o) => o.status)).toEqual(['processed', 'failed']);
    expect(store.ledger).toEqual(['a']);
    expect(await store.get(scope, 'c')).toBeUndefined();
  });

  it('a non-retriable store error from the transaction (the handler ended it itself) is terminal, never retried', async () => {
    const store = new LedgerStore();
    store.completeWithin = async () => {
      throw new OnceOnlyError('TRANSACTION_ENDED', 'the handler committed the transaction itself', false);
    };
    const p = new DedupProcessor({ scope, store, rememberFailures: true });
    const outcome = await p.process({ id: 'pay-1' }, async () => undefined);
    expect(outcome).toMatchObject({ status: 'failed', terminal: true, remembered: true });
    expect(await store.get(scope, 'pay-1')).toMatchObject({ state: 'failed', error: 'TRANSACTION_ENDED' });
  });

  it('handlers that run without a claim (onConflict "process") still get a transaction', async () => {
    const store = new LedgerStore();
    const p = new DedupProcessor({ scope, store, onConflict: 'process' });
    await p.process({ id: 'm', payload: 'A' }, async ({ tx }) => tx.write('A'));
    expect(await p.process({ id: 'm', payload: 'B' }, async ({ tx }) => tx.write('B'))).toMatchObject({ status: 'processed', conflict: true });
    expect(store.ledger).toEqual(['A', 'B']);
  });
});
