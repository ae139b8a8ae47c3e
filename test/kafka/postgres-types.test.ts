// Type-level checks of KafkaDedup with the real stores (checked by `npm run typecheck`; the closures are
// never called, so nothing connects): the handler's context has `tx` with PostgresStore (a `pg` client,
// or your query builder's transaction with the `transaction` option), and none with MemoryStore or
// RedisStore. The runtime side: test/kafka/postgres-chaos.test.ts.
import { MemoryStore } from '@onceonly/core';
import { KafkaDedup, type KafkaContext, type KafkaHandler, type KafkaHandlerContext } from '@onceonly/kafka';
import { PostgresStore } from '@onceonly/postgres';
import { RedisStore } from '@onceonly/redis';
import { Redis } from 'ioredis';
import pg from 'pg';
import { describe, expectTypeOf, it } from 'vitest';

/** A query builder's transaction, as the `transaction` option hands it over. */
interface BuilderTx {
  insertInto(table: string): { values(row: object): Promise<void> };
}

const stores = () => {
  const pool = new pg.Pool();
  return {
    postgres: new PostgresStore({ pool }),
    builder: new PostgresStore<BuilderTx>({ pool, transaction: { run: async (work) => work({ insertInto: () => ({ values: async () => undefined }) }), query: async () => ({ rows: [] }) } }),
    redis: new RedisStore({ client: new Redis({ lazyConnect: true }) }),
    memory: new MemoryStore(),
  };
};

describe('KafkaDedup types with the real stores', () => {
  it('PostgresStore: ctx.tx is a pg client inside BEGIN, in eachBatch, eachMessage and batchRunConfig', () => {
    const check = () => {
      const dedup = new KafkaDedup({ groupId: 'billing', store: stores().postgres });
      expectTypeOf(dedup).toEqualTypeOf<KafkaDedup<PostgresStore>>();
      void dedup.batchRunConfig(async (message, { tx, id, partition, offset }) => {
        expectTypeOf(tx).toEqualTypeOf<pg.PoolClient>();
        await tx.query('INSERT INTO ledger (message_id, partition, "offset", body) VALUES ($1, $2, $3, $4)', [id, partition, offset, message.value]);
      });
      void dedup.eachBatch(async (_message, ctx) => expectTypeOf(ctx).toEqualTypeOf<KafkaContext<pg.PoolClient>>());
      void dedup.eachMessage(async (_message, ctx) => expectTypeOf(ctx.tx).toEqualTypeOf<pg.PoolClient>());
      // A handler written for any store (no tx) fits too.
      const plain: KafkaHandler = async (_message, { id }) => id;
      void dedup.eachBatch(plain);
    };
    void check;
  });

  it("PostgresStore with the transaction option: ctx.tx is the query builder's transaction", () => {
    const check = () => {
      const dedup = new KafkaDedup({ groupId: 'billing', store: stores().builder });
      void dedup.eachBatch(async (_message, { tx, id }) => {
        expectTypeOf(tx).toEqualTypeOf<BuilderTx>();
        await tx.insertInto('ledger').values({ message_id: id });
      });
    };
    void check;
  });

  it('MemoryStore, RedisStore, or no store: no tx', () => {
    const check = () => {
      const { redis, memory } = stores();
      void new KafkaDedup({ groupId: 'g', store: redis }).eachBatch(async (_message, ctx) => {
        expectTypeOf(ctx).toEqualTypeOf<KafkaHandlerContext>();
        // @ts-expect-error RedisStore is not transactional
        void ctx.tx;
      });
      void new KafkaDedup({ groupId: 'g', store: memory }).eachMessage(async (_message, ctx) => {
        // @ts-expect-error MemoryStore is not transactional
        void ctx.tx;
      });
      void new KafkaDedup({ groupId: 'g' }).batchRunConfig(async (_message, ctx) => {
        // @ts-expect-error no store: a MemoryStore
        void ctx.tx;
      });
      // A handler that needs tx does not fit a store without one.
      const booking: KafkaHandler<void, pg.PoolClient> = async (_message, { tx, id }) => void (await tx.query('INSERT INTO ledger (message_id) VALUES ($1)', [id]));
      // @ts-expect-error RedisStore gives no tx
      void new KafkaDedup({ groupId: 'g', store: redis }).eachBatch(booking);
      void new KafkaDedup({ groupId: 'g', store: stores().postgres }).eachBatch(booking);
    };
    void check;
  });
});
