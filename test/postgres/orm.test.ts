// Transactional completion through a query builder (Kysely over pg) on a real PostgreSQL: with the
// store's `transaction` option the handler's transaction is opened by Kysely and `ctx.tx` is Kysely's
// `Transaction<DB>`; the completion is the last statement of that transaction. Also the other way
// round: the default store's `pg` client wrapped into a Kysely instance inside the handler.
import { DedupProcessor } from '@onceonly/core';
import { PostgresStore, TransactionStateError } from '@onceonly/postgres';
import { CompiledQuery, Kysely, PostgresDialect, sql, type Generated, type PostgresPool, type PostgresPoolClient, type Transaction } from 'kysely';
import type pg from 'pg';
import { beforeEach, describe, expect, expectTypeOf, it } from 'vitest';
import { sleep, usePostgres } from './postgres-test-context.js';

interface DB {
  ledger: { id: Generated<string>; message_id: string; account: string; cents: number; fence: string | number };
}

const postgres = usePostgres();
let pool: pg.Pool;
let db: Kysely<DB>;
let schema: string;
let store: PostgresStore<Transaction<DB>>;

/** The store with its handler transactions opened by Kysely (the documented adapter). */
const kyselyStore = (kysely: Kysely<DB>): PostgresStore<Transaction<DB>> =>
  new PostgresStore<Transaction<DB>>({
    pool,
    schema,
    transaction: {
      run: (work) => kysely.transaction().execute(work),
      query: (trx, text, parameters) => trx.executeQuery(CompiledQuery.raw(text, parameters)),
    },
  });

beforeEach(async () => {
  pool = postgres.pool({ max: 6 });
  schema = (await postgres.store({ pool })).tables.schema;
  await postgres.admin.query(
    `CREATE TABLE "${schema}".ledger (id bigserial PRIMARY KEY, message_id text NOT NULL, account text NOT NULL, cents int NOT NULL, fence bigint NOT NULL)`,
  );
  // Kysely shares the store's pool (the same database); never db.destroy() it: that ends the pool.
  db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) }).withSchema(schema);
  store = kyselyStore(db);
});

const ledger = async () =>
  (await postgres.admin.query<{ message_id: string; account: string; fence: string }>(`SELECT message_id, account, fence FROM "${schema}".ledger ORDER BY id`)).rows;
const book = (trx: Transaction<DB>, id: string, token: number, account = 'acc-1') =>
  trx.insertInto('ledger').values({ message_id: id, account, cents: 250, fence: token }).execute();

describe('the transaction option (Kysely opens the transaction)', () => {
  it("ctx.tx is Kysely's Transaction<DB>: the ledger row and the completion commit together; a redelivery is a duplicate", async () => {
    const processor = new DedupProcessor({ scope: 'pay', store, recordResults: true });
    const handler = async ({ tx, id, token }: { tx: Transaction<DB>; id: string; token: number }) => {
      await book(tx, id, token);
      return { booked: id };
    };
    void processor.process({ id: 'typed' }, async (ctx) => expectTypeOf(ctx.tx).toEqualTypeOf<Transaction<DB>>()).catch(() => undefined);
    expect(await processor.process({ id: 'order-1' }, handler)).toMatchObject({ status: 'processed', result: { booked: 'order-1' } });
    expect(await processor.process({ id: 'order-1' }, handler)).toMatchObject({ status: 'duplicate', result: { booked: 'order-1' } });
    expect((await ledger()).map((r) => r.message_id)).toEqual(['order-1']);
    expect(await store.get('pay', 'order-1')).toMatchObject({ state: 'completed', result: '{"booked":"order-1"}' });
    await processor.close();
    await sleep(0);
    expect(pool.totalCount - pool.idleCount).toBe(0); // Kysely gave its connection back
  });

  it("a stale owner's Kysely writes roll back (lease-lost); the owner that took over is the one effect", async () => {
    // The first owner's heartbeats reach nothing (as if its process were frozen): its lease runs out.
    const frozen = new Proxy(store, {
      get: (target, property) => {
        if (property === 'extend') return async () => 'ok';
        if (property === 'extendMany') return async (requests: unknown[]) => requests.map(() => 'ok');
        const value = Reflect.get(target, property, target) as unknown;
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const slow = new DedupProcessor({ scope: 'pay', store: frozen, leaseMs: 300 });
    const fast = new DedupProcessor({ scope: 'pay', store, leaseMs: 30_000 });
    let resume!: () => void;
    const paused = new Promise<void>((resolve) => (resume = resolve));
    let wrote!: () => void;
    const written = new Promise<void>((resolve) => (wrote = resolve));
    const first = slow.process({ id: 'order-2' }, async ({ tx, id, token }) => {
      await book(tx, id, token, 'stale');
      wrote();
      await paused;
    });
    await written;
    await sleep(400);
    const second = await fast.process({ id: 'order-2' }, async ({ tx, id, token }) => book(tx, id, token, 'taker'));
    expect(second).toMatchObject({ status: 'processed', takeover: true });
    resume();
    expect(await first).toMatchObject({ status: 'lease-lost' });
    expect((await ledger()).map((r) => r.account)).toEqual(['taker']);
    await Promise.all([slow.close(), fast.close()]);
  });

  it('a handler that throws leaves no row; the retry books once', async () => {
    const processor = new DedupProcessor({ scope: 'pay', store });
    let attempts = 0;
    const handler = async ({ tx, id, token }: { tx: Transaction<DB>; id: string; token: number }) => {
      await book(tx, id, token);
      if (++attempts === 1) throw new Error('downstream 503');
    };
    expect(await processor.process({ id: 'order-3' }, handler)).toMatchObject({ status: 'failed', terminal: false });
    expect(await ledger()).toEqual([]);
    expect(await processor.process({ id: 'order-3' }, handler)).toMatchObject({ status: 'processed' });
    expect(await ledger()).toHaveLength(1);
    await processor.close();
  });

  it('a handler that commits the transaction itself: TRANSACTION_ENDED (terminal), nothing completed', async () => {
    const processor = new DedupProcessor({ scope: 'pay', store, rememberFailures: true });
    const outcome = await processor.process({ id: 'order-4' }, async ({ tx, id, token }) => {
      await book(tx, id, token);
      await sql`commit`.execute(tx);
    });
    expect(outcome).toMatchObject({ status: 'failed', terminal: true });
    expect(outcome.status === 'failed' && outcome.error).toBeInstanceOf(TransactionStateError);
    expect(outcome.status === 'failed' && outcome.error).toMatchObject({ code: 'TRANSACTION_ENDED', retriable: false });
    expect(await ledger()).toHaveLength(1); // the handler's own COMMIT: why it is never run again
    expect(await store.get('pay', 'order-4')).toMatchObject({ state: 'failed', error: 'TRANSACTION_ENDED' });
    await processor.close();
  });

  it('a handler that rolls back itself: TRANSACTION_ENDED too, and the completion was not committed on its own', async () => {
    const processor = new DedupProcessor({ scope: 'pay', store });
    const outcome = await processor.process({ id: 'order-5' }, async ({ tx, id, token }) => {
      await book(tx, id, token);
      await sql`rollback`.execute(tx);
    });
    expect(outcome).toMatchObject({ status: 'failed', terminal: true, error: { code: 'TRANSACTION_ENDED' } });
    expect(await ledger()).toEqual([]);
    expect((await store.get('pay', 'order-5'))?.state).not.toBe('completed');
    await processor.close();
  });

  it('a handler that swallows a failed statement: TRANSACTION_ABORTED (retriable), everything rolled back', async () => {
    const processor = new DedupProcessor({ scope: 'pay', store });
    const outcome = await processor.process({ id: 'order-6' }, async ({ tx, id, token }) => {
      await book(tx, id, token);
      await sql`SELECT * FROM no_such_table`.execute(tx).catch(() => undefined);
    });
    expect(outcome).toMatchObject({ status: 'failed', terminal: false, error: { code: 'TRANSACTION_ABORTED', retriable: true } });
    expect(await ledger()).toEqual([]);
    expect(await store.get('pay', 'order-6')).toBeUndefined(); // released: the retry runs
    await processor.close();
  });

  it('a statement that times out inside the transaction: the handler fails, nothing lands, the retry books once', async () => {
    const processor = new DedupProcessor({ scope: 'pay', store });
    let attempts = 0;
    const outcome = await processor.process({ id: 'order-7' }, async ({ tx, id, token }) => {
      attempts++;
      await book(tx, id, token);
      await sql`SET LOCAL statement_timeout = 100`.execute(tx);
      await sql`SELECT pg_sleep(2)`.execute(tx);
    });
    expect(outcome).toMatchObject({ status: 'failed', terminal: false, error: { code: '57014' } });
    expect(await ledger()).toEqual([]);
    expect(await processor.process({ id: 'order-7' }, async ({ tx, id, token }) => book(tx, id, token))).toMatchObject({ status: 'processed' });
    expect(await ledger()).toHaveLength(1);
    expect(attempts).toBe(1);
    await processor.close();
  });

  it('Kysely cannot reach the database: store-unavailable (retriable), nothing marked, the claim released', async () => {
    const down = postgres.pool({ host: '127.0.0.1', port: 1, connectionString: undefined, connectionTimeoutMillis: 1_000 });
    const broken = kyselyStore(new Kysely<DB>({ dialect: new PostgresDialect({ pool: down }) }).withSchema(schema));
    const processor = new DedupProcessor({ scope: 'pay', store: broken });
    let ran = false;
    const outcome = await processor.process({ id: 'order-8' }, async () => {
      ran = true;
    });
    expect(outcome).toMatchObject({ status: 'store-unavailable', error: { code: 'STORE_UNAVAILABLE', retriable: true } });
    expect(outcome.status === 'store-unavailable' && outcome.error.message).toMatch(/opening the transaction through the transaction option/);
    expect(ran).toBe(false);
    expect(await broken.get('pay', 'order-8')).toBeUndefined();
    await processor.close();
  });

  it('a run() that opens no transaction is caught before the completion can commit on its own', async () => {
    const careless = new PostgresStore<Kysely<DB>>({
      pool,
      schema,
      transaction: { run: (work) => work(db), query: (kysely, text, parameters) => kysely.executeQuery(CompiledQuery.raw(text, parameters)) },
    });
    const processor = new DedupProcessor({ scope: 'pay', store: careless });
    const outcome = await processor.process({ id: 'order-9' }, async ({ tx, id, token }) => {
      await tx.insertInto('ledger').values({ message_id: id, account: 'x', cents: 1, fence: token }).execute();
    });
    expect(outcome).toMatchObject({ status: 'failed', terminal: true, error: { code: 'TRANSACTION_ENDED' } });
    expect((await careless.get('pay', 'order-9'))?.state).not.toBe('completed');
    await processor.close();
  });

  it('handlers run without a claim (onConflict "process") get a Kysely transaction too', async () => {
    const processor = new DedupProcessor({ scope: 'pay', store, onConflict: 'process' });
    await processor.process({ id: 'order-10', payload: 'A' }, async ({ tx, id, token }) => book(tx, id, token, 'A'));
    const second = await processor.process({ id: 'order-10', payload: 'B' }, async ({ tx, id }) => book(tx, id, 0, 'B'));
    expect(second).toMatchObject({ status: 'processed', conflict: true });
    expect((await ledger()).map((r) => r.account)).toEqual(['A', 'B']);
    await processor.close();
  });
});

describe("the default store's pg client, wrapped into Kysely in the handler", () => {
  /** A Kysely "pool" of one borrowed client: the store's transaction; Kysely never releases it. */
  const singleClientPool = (client: pg.PoolClient): PostgresPool => {
    const borrowed: PostgresPoolClient = { query: client.query.bind(client) as PostgresPoolClient['query'], release: () => {} };
    return { connect: async () => borrowed, end: async () => {} };
  };

  it('its writes are part of the transaction: committed with the completion, rolled back with a throw', async () => {
    const plain = new PostgresStore({ pool, schema });
    const processor = new DedupProcessor({ scope: 'pay', store: plain });
    const kyselyOn = (tx: pg.PoolClient) => new Kysely<DB>({ dialect: new PostgresDialect({ pool: singleClientPool(tx) }) }).withSchema(schema);
    expect(
      await processor.process({ id: 'order-11' }, async ({ tx, id, token }) => {
        await kyselyOn(tx).insertInto('ledger').values({ message_id: id, account: 'wrapped', cents: 1, fence: token }).execute();
      }),
    ).toMatchObject({ status: 'processed' });
    expect(
      await processor.process({ id: 'order-12' }, async ({ tx, id, token }) => {
        await kyselyOn(tx).insertInto('ledger').values({ message_id: id, account: 'thrown', cents: 1, fence: token }).execute();
        throw new Error('no');
      }),
    ).toMatchObject({ status: 'failed' });
    expect((await ledger()).map((r) => r.account)).toEqual(['wrapped']);
    await processor.close();
  });
});
