// Transactional completion: the handler's writes (on `tx`) and the completion commit together, or
// neither does. A stale owner's writes roll back, a handler that throws rolls back, a crash before the
// commit rolls back both, and a handler that ends the transaction itself is told so. All of it on a
// plain pool and on a pipelined one (`pipeline: true`), where BEGIN rides with the handler's first
// statement and the completion with the COMMIT.
import { DedupProcessor, StoreUnavailableError, type ClaimResult } from '@onceonly/core';
import { PostgresStore, TransactionStateError } from '@onceonly/postgres';
import type pg from 'pg';
import { beforeEach, describe, expect, it } from 'vitest';
import { sleep, usePostgres } from './postgres-test-context.js';

const postgres = usePostgres();
let store: PostgresStore;
let pool: pg.Pool;
let effects: string; // a table of the handler's own, next to the store's

const tokenOf = (claim: ClaimResult) => (claim.status === 'acquired' ? claim.token : -1);
const effectRows = async () => (await postgres.admin.query<{ id: string; fence: string }>(`SELECT id, fence FROM ${effects} ORDER BY id`)).rows;
const claim = (id: string, leaseMs = 30_000) => store.claim({ scope: 'pay', id, leaseMs, windowMs: 60_000 });
const writeEffect = (tx: pg.PoolClient, id: string, token: number) => tx.query(`INSERT INTO ${effects} (id, fence) VALUES ($1, $2)`, [id, token]);

describe.each([{ pipeline: false }, { pipeline: true }])('pool with %o', ({ pipeline }) => {
  beforeEach(async () => {
    pool = postgres.pool({ max: 5, pipeline });
    store = await postgres.store({ pool });
    effects = `"${store.tables.schema}".effects`;
    await postgres.admin.query(`CREATE TABLE ${effects} (id text PRIMARY KEY, fence bigint NOT NULL)`);
  });

  describe('completeWithin', () => {
    it('commits the effect and the completion (with its result) together', async () => {
      const token = tokenOf(await claim('m1'));
      const done = await store.completeWithin({ scope: 'pay', id: 'm1', token, windowMs: 60_000 }, async (tx) => {
        await writeEffect(tx, 'm1', token);
        return { value: 'charged', result: '"charged"' };
      });
      expect(done).toEqual({ transition: 'ok', value: 'charged' });
      expect(await effectRows()).toEqual([{ id: 'm1', fence: String(token) }]);
      expect(await store.get('pay', 'm1')).toMatchObject({ state: 'completed', token, result: '"charged"' });
      expect(pool.totalCount - pool.idleCount).toBe(0); // the connection went back to the pool
    });

    it("rolls back a stale owner's writes: lease-lost, and the new owner's record is untouched", async () => {
      const stale = tokenOf(await claim('m1', 200));
      await sleep(250);
      const current = await claim('m1');
      expect(current).toMatchObject({ status: 'acquired', takeover: true });
      const done = await store.completeWithin({ scope: 'pay', id: 'm1', token: stale, windowMs: 60_000 }, async (tx) => {
        await writeEffect(tx, 'm1', stale);
        return { value: 'stale', result: '"stale"' };
      });
      expect(done).toEqual({ transition: 'lease-lost', value: 'stale' });
      expect(await effectRows()).toEqual([]);
      expect(await store.get('pay', 'm1')).toMatchObject({ state: 'in-progress', token: tokenOf(current) });
    });

    it('rolls back the writes of a handler that throws, rethrows its error, and leaves the claim owned', async () => {
      const token = tokenOf(await claim('m1'));
      const failure = new Error('downstream said no');
      const thrown = await store
        .completeWithin({ scope: 'pay', id: 'm1', token, windowMs: 60_000 }, async (tx) => {
          await writeEffect(tx, 'm1', token);
          throw failure;
        })
        .catch((e: unknown) => e);
      expect(thrown).toBe(failure);
      expect(await effectRows()).toEqual([]);
      expect(await store.get('pay', 'm1')).toMatchObject({ state: 'in-progress', token });
      expect(await store.release({ scope: 'pay', id: 'm1', token })).toBe('ok');
    });

    it('a crash before the commit (the connection dies) rolls back the effect and the completion together', async () => {
      const token = tokenOf(await claim('m1'));
      const thrown = await store
        .completeWithin({ scope: 'pay', id: 'm1', token, windowMs: 60_000 }, async (tx) => {
          await writeEffect(tx, 'm1', token);
          const { rows } = await tx.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
          await postgres.admin.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
          return { value: 'never committed' };
        })
        .catch((e: unknown) => e);
      expect(thrown).toBeInstanceOf(StoreUnavailableError);
      expect(await effectRows()).toEqual([]);
      expect(await store.get('pay', 'm1')).toMatchObject({ state: 'in-progress', token });
      // The dead connection was dropped, not handed to the next caller.
      expect((await claim('m2')).status).toBe('acquired');
    });

    it('a handler that commits on tx itself gets TransactionStateError TRANSACTION_ENDED (not retriable); nothing is completed', async () => {
      const token = tokenOf(await claim('m1'));
      const thrown = await store
        .completeWithin({ scope: 'pay', id: 'm1', token, windowMs: 60_000 }, async (tx) => {
          await writeEffect(tx, 'm1', token);
          await tx.query('COMMIT');
          return { value: 'oops' };
        })
        .catch((e: unknown) => e);
      expect(thrown).toBeInstanceOf(TransactionStateError);
      expect(thrown).toMatchObject({ code: 'TRANSACTION_ENDED', retriable: false });
      expect(await effectRows()).toHaveLength(1); // committed by the handler: the reason it is not retriable
      expect(await store.get('pay', 'm1')).toMatchObject({ state: 'in-progress', token });
      await sleep(0);
      expect(pool.totalCount - pool.idleCount).toBe(0);
    });

    it('a result the table cannot hold (U+0000) rolls the writes back and rejects with a TypeError; the connection stays usable', async () => {
      const token = tokenOf(await claim('m1'));
      const connections = pool.totalCount;
      const thrown = await store
        .completeWithin({ scope: 'pay', id: 'm1', token, windowMs: 60_000 }, async (tx) => {
          await writeEffect(tx, 'm1', token);
          return { value: 'v', result: 'a\u0000b' };
        })
        .catch((e: unknown) => e);
      expect(thrown).toBeInstanceOf(TypeError);
      expect([pool.totalCount, pool.idleCount]).toEqual([connections, connections]); // rolled back and handed back, not dropped
      expect(await effectRows()).toEqual([]);
      expect(await store.get('pay', 'm1')).toMatchObject({ state: 'in-progress', token });
      expect((await store.withTransaction((tx) => writeEffect(tx, 'after', 1))).rowCount).toBe(1);
    });

    it('a handler that writes nothing, or throws before its first statement, still ends its transaction', async () => {
      const token = tokenOf(await claim('m1'));
      expect(await store.completeWithin({ scope: 'pay', id: 'm1', token, windowMs: 60_000 }, async () => ({ value: 'nothing' }))).toEqual({
        transition: 'ok',
        value: 'nothing',
      });
      const other = tokenOf(await claim('m2'));
      const failure = new Error('before any statement');
      await expect(store.completeWithin({ scope: 'pay', id: 'm2', token: other, windowMs: 60_000 }, () => Promise.reject(failure))).rejects.toBe(failure);
      expect(await store.get('pay', 'm2')).toMatchObject({ state: 'in-progress', token: other });
      await sleep(0);
      expect(pool.totalCount - pool.idleCount).toBe(0);
      // The connections went back clean: the next transactions on them commit.
      expect((await store.withTransaction((tx) => writeEffect(tx, 'after', 1))).rowCount).toBe(1);
    });

    it('a handler that goes on after a failed statement gets TRANSACTION_ABORTED (retriable); everything rolled back', async () => {
      const token = tokenOf(await claim('m1'));
      const thrown = await store
        .completeWithin({ scope: 'pay', id: 'm1', token, windowMs: 60_000 }, async (tx) => {
          await writeEffect(tx, 'm1', token);
          await tx.query('SELECT * FROM no_such_table').catch(() => undefined);
          return { value: 'swallowed' };
        })
        .catch((e: unknown) => e);
      expect(thrown).toMatchObject({ name: 'TransactionStateError', code: 'TRANSACTION_ABORTED', retriable: true });
      expect(await effectRows()).toEqual([]);
      expect(await store.get('pay', 'm1')).toMatchObject({ state: 'in-progress', token });
    });
  });

  describe('withTransaction', () => {
    it('commits when the work resolves and rolls back when it throws', async () => {
      expect(await store.withTransaction(async (tx) => (await writeEffect(tx, 'a', 1)).rowCount)).toBe(1);
      await expect(
        store.withTransaction(async (tx) => {
          await writeEffect(tx, 'b', 2);
          throw new Error('no');
        }),
      ).rejects.toThrow('no');
      expect((await effectRows()).map((r) => r.id)).toEqual(['a']);
    });
  });

  describe('through DedupProcessor', () => {
    it('the handler gets ctx.tx: its write and the completion commit together; a redelivery is a duplicate', async () => {
      const processor = new DedupProcessor({ scope: 'pay', store, recordResults: true });
      const handler = async ({ tx, id, token }: { tx: pg.PoolClient; id: string; token: number }) => {
        await writeEffect(tx, id, token);
        return { charged: id };
      };
      const first = await processor.process({ id: 'order-1' }, handler);
      expect(first).toMatchObject({ status: 'processed', result: { charged: 'order-1' } });
      const again = await processor.process({ id: 'order-1' }, handler);
      expect(again).toMatchObject({ status: 'duplicate', result: { charged: 'order-1' } });
      expect((await effectRows()).map((r) => r.id)).toEqual(['order-1']);
      await processor.close();
    });

    it('a handler that throws leaves no write behind, and the retry applies the effect once', async () => {
      const processor = new DedupProcessor({ scope: 'pay', store });
      let attempts = 0;
      const handler = async ({ tx, id, token }: { tx: pg.PoolClient; id: string; token: number }) => {
        await writeEffect(tx, id, token);
        if (++attempts === 1) throw new Error('transient');
      };
      expect(await processor.process({ id: 'order-2' }, handler)).toMatchObject({ status: 'failed', terminal: false });
      expect(await effectRows()).toEqual([]);
      expect(await processor.process({ id: 'order-2' }, handler)).toMatchObject({ status: 'processed' });
      expect((await effectRows()).map((r) => r.id)).toEqual(['order-2']);
      await processor.close();
    });
  });
});
