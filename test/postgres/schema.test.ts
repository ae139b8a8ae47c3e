// The schema: migrate() is idempotent and safe when many workers run it at once; the shipped
// sql/schema.sql builds the same tables; custom names are quoted (case kept, nothing injected).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { migrate, PostgresStore, schemaSql } from '@onceonly/postgres';
import { describe, expect, it } from 'vitest';
import { usePostgres } from './postgres-test-context.js';

const postgres = usePostgres();
const SCHEMA_SQL = fileURLToPath(new URL('../../packages/postgres/sql/schema.sql', import.meta.url));

/** Tables, columns (name, type, collation, nullability), indexes and checks of `schema`, comparable. */
async function shapeOf(schema: string): Promise<unknown> {
  const columns = await postgres.admin.query(
    `SELECT table_name, column_name, data_type, collation_name, is_nullable, ordinal_position
     FROM information_schema.columns WHERE table_schema = $1 ORDER BY table_name, ordinal_position`,
    [schema],
  );
  const indexes = await postgres.admin.query(
    `SELECT tablename, indexname, replace(indexdef, $1, 'S') AS def FROM pg_indexes WHERE schemaname = $2 ORDER BY indexname`,
    [`"${schema}"`, schema],
  );
  const checks = await postgres.admin.query(
    `SELECT rel.relname, pg_get_constraintdef(c.oid) AS def, rel.reloptions
     FROM pg_constraint c JOIN pg_class rel ON rel.oid = c.conrelid JOIN pg_namespace n ON n.oid = rel.relnamespace
     WHERE n.nspname = $1 ORDER BY rel.relname, def`,
    [schema],
  );
  return { columns: columns.rows, indexes: indexes.rows.map((r) => ({ ...r, def: r.def.replace(schema, 'S') })), checks: checks.rows };
}

describe('migrate', () => {
  it('run by ten workers at once: every call succeeds and the tables exist once', async () => {
    const schema = await postgres.freshSchema();
    const pool = postgres.pool({ max: 10 });
    const stores = Array.from({ length: 10 }, () => new PostgresStore({ pool, schema }));
    await Promise.all(stores.map((store) => store.migrate()));
    const { rows } = await postgres.admin.query(`SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename`, [schema]);
    expect(rows.map((r) => r.tablename)).toEqual(['onceonly_marks', 'onceonly_records']);
    expect((await stores[3]!.claim({ scope: 's', id: 'a', leaseMs: 1000, windowMs: 2000 })).status).toBe('acquired');
  });

  it('is idempotent: running it again keeps the rows', async () => {
    const store = await postgres.store();
    await store.claim({ scope: 's', id: 'kept', leaseMs: 30_000, windowMs: 60_000 });
    await store.migrate();
    await migrate(postgres.admin, store.tables);
    expect(await store.get('s', 'kept')).toMatchObject({ state: 'in-progress' });
  });

  it('builds what the shipped sql/schema.sql builds, which is schemaSql() of the default names', async () => {
    const shipped = readFileSync(SCHEMA_SQL, 'utf8');
    expect(shipped).toBe(schemaSql());

    // The shipped file in a fresh database schema (by search_path: the file names public).
    const viaFile = await postgres.freshSchema();
    const viaMigrate = await postgres.freshSchema();
    await postgres.admin.query(shipped.replaceAll('"public".', `"${viaFile}".`));
    await new PostgresStore({ pool: postgres.admin, schema: viaMigrate }).migrate();
    expect(await shapeOf(viaFile)).toEqual(await shapeOf(viaMigrate));
    expect(await shapeOf(viaFile)).toMatchObject({
      indexes: expect.arrayContaining([expect.objectContaining({ indexname: 'onceonly_records_expires_at_idx' })]),
    });
  });

  it('quotes custom names: case is kept, and the store works in them', async () => {
    const schema = await postgres.freshSchema();
    const store = new PostgresStore({ pool: postgres.admin, schema, table: 'Dedup_Records', marksTable: 'select' });
    await store.migrate();
    const { rows } = await postgres.admin.query(`SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename`, [schema]);
    expect(rows.map((r) => r.tablename)).toEqual(['Dedup_Records', 'select']);
    const claim = await store.claim({ scope: 's', id: 'a', leaseMs: 30_000, windowMs: 60_000 });
    expect(claim.status).toBe('acquired');
    const done = await store.completeManyMarked({ scope: 's', name: 'p:0' }, [], { from: 0, to: 3 });
    expect(done.mark).toEqual({ low: 0, high: 3 });
  });

  it('does not create schemas: a missing one is a clear store error', async () => {
    const store = new PostgresStore({ pool: postgres.admin, schema: 'no_such_schema' });
    await expect(store.migrate()).rejects.toMatchObject({
      name: 'StoreUnavailableError',
      message: 'PostgreSQL store unavailable during migrate: PostgreSQL error 3F000 (invalid_schema_name)',
    });
  });
});
