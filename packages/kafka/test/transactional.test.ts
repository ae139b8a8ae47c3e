// KafkaDedup with a transactional store: the handler's context has `tx` (typed from the store, at
// runtime the store's transaction for that one message), and only then. The store here (core's
// test/ledger-store.ts) keeps a ledger in memory with commit/rollback; test/kafka/postgres-chaos.test.ts runs a consumer group on
// PostgreSQL under kills, and test/kafka/postgres-types.test.ts checks the types with PostgresStore.
import { MemoryStore } from '@onceonly/core';
import type { KafkaMessage } from 'kafkajs';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { KafkaDedup, type KafkaContext, type KafkaHandler, type KafkaHandlerContext } from '@onceonly/kafka';
import { LedgerStore, type Tx } from '../../core/test/ledger-store.js';
import { batchPayload } from './batch-payload.js';

const message = (offset: number, id: string): KafkaMessage => ({ key: null, value: Buffer.from(id), timestamp: '0', attributes: 0, offset: String(offset), headers: { 'onceonly-id': id } });


describe('KafkaDedup with a transactional store', () => {
  it('runs each message in a transaction of its own, handed to the handler as ctx.tx: its writes commit with the completion, once per ID', async () => {
    const store = new LedgerStore();
    const dedup = new KafkaDedup({ groupId: 'g', store, concurrency: 2 });
    const handler = dedup.eachBatch(async (m, { tx, id, partition, offset }) => tx.write(`${id} ${partition}/${offset} ${m.value!.toString()}`));
    const first = batchPayload([message(0, 'a'), message(1, 'b'), message(2, 'a'), message(3, 'c')]);
    await handler(first.payload);
    expect(first.resolved).toEqual(['0', '1', '2', '3']);
    expect(store.ledger).toEqual(['a 0/0 a', 'b 0/1 b', 'c 0/3 c']);
    expect(store.transactions).toBe(3);
    // Redelivered: duplicates, no transaction, nothing written.
    const again = batchPayload([message(4, 'a'), message(5, 'b'), message(6, 'c')]);
    await handler(again.payload);
    expect(again.resolved).toEqual(['4', '5', '6']);
    expect(store.ledger).toHaveLength(3);
    expect(store.transactions).toBe(3);
  });

  it('eachMessage too; a handler that throws rolls its writes back, and the redelivery books them once', async () => {
    const store = new LedgerStore();
    const dedup = new KafkaDedup({ groupId: 'g', store, retry: { maxAttempts: 1 } });
    let fail = true;
    const each = dedup.eachMessage(async (_m, { tx, id }) => {
      tx.write(id);
      if (fail) throw new Error('boom');
    });
    const at = { topic: 'orders', partition: 0, message: message(0, 'm'), heartbeat: async () => undefined };
    await expect(each(at)).rejects.toThrow('boom');
    expect(store.ledger).toEqual([]);
    fail = false;
    await each(at);
    await each(at);
    expect(store.ledger).toEqual(['m']);
  });
});

describe('types', () => {
  // Never called: these only have to compile (or fail to, where marked).
  const store = new LedgerStore();
  const memory = new MemoryStore();

  it('tx is typed from the store in eachBatch, eachMessage and batchRunConfig', () => {
    const dedup = new KafkaDedup({ groupId: 'g', store });
    expectTypeOf(dedup).toEqualTypeOf<KafkaDedup<LedgerStore>>();
    void dedup.eachBatch(async (_m, ctx) => expectTypeOf(ctx.tx).toEqualTypeOf<Tx>());
    void dedup.eachMessage(async (_m, ctx) => expectTypeOf(ctx.tx).toEqualTypeOf<Tx>());
    void dedup.batchRunConfig(async (message, { tx, id, topic, partition, offset, token }) => {
      expectTypeOf(message).toEqualTypeOf<KafkaMessage>();
      tx.write(`${id} ${topic} ${partition} ${offset} ${token}`);
    });
    const handler: KafkaHandler<void, Tx> = async (_m, { tx }) => tx.write('x');
    void dedup.eachBatch(handler);
    expectTypeOf<KafkaContext<Tx>>().toEqualTypeOf<KafkaHandlerContext & { readonly tx: Tx }>();
  });

  it('no tx with any other store, or none', () => {
    void new KafkaDedup({ groupId: 'g', store: memory }).eachBatch(async (_m, ctx) => {
      // @ts-expect-error the memory store is not transactional
      void ctx.tx;
    });
    void new KafkaDedup({ groupId: 'g' }).eachMessage(async (_m, ctx) => {
      // @ts-expect-error no store: the memory store
      void ctx.tx;
    });
    expectTypeOf<KafkaContext>().toEqualTypeOf<KafkaHandlerContext>();
    expectTypeOf<KafkaHandlerContext>().not.toHaveProperty('tx');
    // A handler that wants a tx does not fit a dedup without one.
    const wantsTx: KafkaHandler<void, Tx> = async (_m, { tx }) => tx.write('x');
    // @ts-expect-error the memory store gives no tx
    void new KafkaDedup({ groupId: 'g', store: memory }).eachBatch(wantsTx);
  });

  it('existing code keeps compiling: KafkaHandler<R>, KafkaHandlerContext, KafkaDedup without type arguments', () => {
    const plain: KafkaHandler<string> = async (_m, { id }: KafkaHandlerContext) => id;
    void new KafkaDedup({ groupId: 'g', store: memory }).eachBatch(plain);
    void new KafkaDedup({ groupId: 'g', store }).eachBatch(plain); // a transactional store the handler ignores
    const dedups: KafkaDedup[] = [new KafkaDedup({ groupId: 'g', store }), new KafkaDedup({ groupId: 'g' })];
    void dedups;
    interface Extended extends KafkaHandlerContext {
      readonly traceId: string;
    }
    expectTypeOf<Extended['offset']>().toEqualTypeOf<string>();
  });
});
