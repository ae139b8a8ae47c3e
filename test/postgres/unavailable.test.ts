// Fail-closed: when PostgreSQL cannot be reached or gives up on a statement, every call rejects with a
// retriable StoreUnavailableError, its message holds no payload, and nothing is written. The outage
// test runs its own throwaway server, which it kills and restarts.
import { OnceOnlyError, StoreUnavailableError } from '@onceonly/core';
import { PostgresStore } from '@onceonly/postgres';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { startPostgresServer } from '../support/postgres-server.js';
import { usePostgres } from './postgres-test-context.js';

const postgres = usePostgres();
const SECRET = 'secret-payload-4f1c';
const cleanup: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

async function expectUnavailable(promise: Promise<unknown>): Promise<StoreUnavailableError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(StoreUnavailableError);
  expect(error).toBeInstanceOf(OnceOnlyError);
  const unavailable = error as StoreUnavailableError;
  expect(unavailable).toMatchObject({ code: 'STORE_UNAVAILABLE', retriable: true, name: 'StoreUnavailableError' });
  expect(unavailable.cause).toBeInstanceOf(Error);
  expect(unavailable.message).not.toContain(SECRET);
  return unavailable;
}

const claim = (scope: string, id: string) => ({ scope, id, fingerprint: SECRET, leaseMs: 30_000, windowMs: 60_000 });

describe('PostgreSQL down', () => {
  it('rejects every call fast with StoreUnavailableError, reports it unavailable, and nothing is written', async () => {
    const server = await startPostgresServer();
    cleanup.push(() => server.stop());
    // As the PostgresStore docs recommend: an 'error' listener and a connection timeout.
    const pool = new pg.Pool({ connectionString: server.url, connectionTimeoutMillis: 2_000, max: 4 });
    pool.on('error', () => {});
    cleanup.push(() => pool.end());
    const store = new PostgresStore({ pool });
    await store.migrate();
    const owned = await store.claim(claim('jobs', 'owned'));
    expect(owned.status).toBe('acquired');
    const token = owned.status === 'acquired' ? owned.token : 0;
    expect(store.isAvailable()).toBe(true);

    await server.kill();

    const started = Date.now();
    const ref = { scope: 'jobs', id: 'owned', token };
    const mark = { scope: 'jobs', name: 't:0' };
    const errors = [
      await expectUnavailable(store.claim(claim('jobs', SECRET))),
      await expectUnavailable(store.claimMany([claim('jobs', 'a'), claim('other', 'b')])),
      await expectUnavailable(store.extend({ ...ref, leaseMs: 1000 })),
      await expectUnavailable(store.extendMany([{ ...ref, leaseMs: 1000 }])),
      await expectUnavailable(store.complete({ ...ref, result: SECRET, windowMs: 1000 })),
      await expectUnavailable(store.completeMany([{ ...ref, result: SECRET, windowMs: 1000 }])),
      await expectUnavailable(store.release(ref)),
      await expectUnavailable(store.releaseMany([ref])),
      await expectUnavailable(store.fail({ ...ref, error: 'E', windowMs: 1000 })),
      await expectUnavailable(store.get('jobs', SECRET)),
      await expectUnavailable(store.claimManyMarked(mark, [{ ...claim('jobs', 'c'), position: 1 }], true)),
      await expectUnavailable(store.completeManyMarked(mark, [{ ...ref, windowMs: 1000 }], { from: 0, to: 1 })),
      await expectUnavailable(store.getMark(mark)),
      await expectUnavailable(store.deleteMark(mark)),
      await expectUnavailable(store.prune()),
      await expectUnavailable(store.migrate()),
      await expectUnavailable(store.completeWithin({ ...ref, windowMs: 1000 }, async () => ({ value: SECRET, result: SECRET }))),
      await expectUnavailable(store.withTransaction(async () => SECRET)),
    ];
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(errors[0]!.message).toMatch(/^PostgreSQL store unavailable during claim: /);
    expect(errors[1]!.message).toMatch(/^PostgreSQL store unavailable during claimMany: /);
    expect(store.isAvailable()).toBe(false);

    // Same port, same data (a crash restart): only what was written before the outage is there.
    await server.restart();
    expect(await store.get('jobs', SECRET)).toBeUndefined();
    expect(store.isAvailable()).toBe(true);
    expect(await store.get('jobs', 'a')).toBeUndefined();
    expect(await store.get('other', 'b')).toBeUndefined();
    expect(await store.get('jobs', 'owned')).toMatchObject({ state: 'in-progress', token, fingerprint: SECRET });
    expect(await store.getMark(mark)).toBeUndefined();
    expect(await store.complete({ ...ref, windowMs: 60_000 })).toBe('ok');
  });
});

describe('a statement that times out', () => {
  it('rejects with StoreUnavailableError naming the SQLSTATE (57014), writes nothing, and is no outage', async () => {
    const store = await postgres.store({ pool: postgres.pool({ statement_timeout: 200 }) });
    const locker = await postgres.admin.connect();
    cleanup.push(() => locker.release());
    await locker.query('BEGIN');
    await locker.query(`LOCK TABLE "${store.tables.schema}".onceonly_records IN ACCESS EXCLUSIVE MODE`);

    const error = await expectUnavailable(store.claim(claim('jobs', SECRET)));
    expect(error.message).toBe('PostgreSQL store unavailable during claim: PostgreSQL error 57014 (query_canceled)');
    expect(store.isAvailable()).toBe(true);

    await locker.query('ROLLBACK');
    expect(await store.get('jobs', SECRET)).toBeUndefined();
    expect((await store.claim(claim('jobs', SECRET))).status).toBe('acquired');
  });
});

describe('missing tables', () => {
  it('every call says how to create them', async () => {
    const schema = await postgres.freshSchema();
    const store = new PostgresStore({ pool: postgres.pool(), schema });
    const error = await expectUnavailable(store.claim(claim('jobs', SECRET)));
    expect(error.message).toContain('PostgreSQL error 42P01 (undefined_table)');
    expect(error.message).toContain(`${schema}.onceonly_records`);
    expect(error.message).toContain('store.migrate()');
  });

  it('createSchema: true creates them on first use, once, however many stores start together', async () => {
    const schema = await postgres.freshSchema();
    const pool = postgres.pool({ max: 10 });
    const stores = Array.from({ length: 5 }, () => new PostgresStore({ pool, schema, createSchema: true }));
    const answers = await Promise.all(stores.map((store, i) => store.claim(claim('jobs', `first-${i}`))));
    expect(answers.map((a) => a.status)).toEqual(Array(5).fill('acquired'));
    const { rows } = await postgres.admin.query(`SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = $1`, [schema]);
    expect(rows[0].n).toBe(2);
  });
});
