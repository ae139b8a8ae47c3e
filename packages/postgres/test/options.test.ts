// Option validation and SQL names, pure: no database needed. (Behaviour against a real PostgreSQL is
// tested in test/postgres and test/conformance.)
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { InvalidOptionsError } from '@onceonly/core';
import { identifierProblem, MAX_TABLE_NAME_LENGTH, PostgresStore, quoteIdentifier, schemaSql } from '@onceonly/postgres';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';

// Never connects: a pool opens connections on first use only.
const pool = new pg.Pool({ host: '127.0.0.1', port: 1 });
afterAll(() => pool.end());

const invalid = (options: unknown): InvalidOptionsError => {
  try {
    new PostgresStore(options as ConstructorParameters<typeof PostgresStore>[0]);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect(error).toMatchObject({ code: 'INVALID_OPTIONS', retriable: false });
    return error as InvalidOptionsError;
  }
  throw new Error('the options were accepted');
};

describe('PostgresStore options', () => {
  it('defaults: public.onceonly_records and public.onceonly_marks', () => {
    expect(new PostgresStore({ pool }).tables).toEqual({ schema: 'public', table: 'onceonly_records', marksTable: 'onceonly_marks' });
  });

  it('needs a pg Pool: a missing pool, a Client or a PoolClient-like object is refused, naming the option', async () => {
    expect(invalid({}).message).toBe('PostgresStore option "pool" must be a pg Pool (a single Client cannot: transactions need connections of their own)');
    expect(invalid({ pool: new pg.Client() }).message).toMatch(/^PostgresStore option "pool" must be a pg Pool/);
    expect(invalid({ pool: { query: () => undefined } }).message).toMatch(/^PostgresStore option "pool"/);
    expect(invalid(undefined).message).toMatch(/^PostgresStore option "options"/);
  });

  it('refuses unknown options', () => {
    expect(invalid({ pool, prefix: 'x' }).message).toBe('PostgresStore option "prefix" is not a PostgresStore option');
  });

  it('refuses schema and table names that are not plain identifiers, whatever they try', () => {
    for (const [option, value] of [
      ['table', 'records; DROP TABLE users'],
      ['table', 'a"b'],
      ['table', 'a.b'],
      ['table', '1abc'],
      ['table', ''],
      ['table', 'é'],
      ['table', 'x'.repeat(MAX_TABLE_NAME_LENGTH + 1)],
      ['marksTable', 'marks--'],
      ['schema', 'public"; --'],
      ['schema', 'x'.repeat(64)],
    ] as const) {
      expect(invalid({ pool, [option]: value }).message).toMatch(new RegExp(`^PostgresStore option "${option}" must`));
    }
    expect(invalid({ pool, table: 'same', marksTable: 'same' }).message).toBe('PostgresStore option "marksTable" must differ from table');
  });

  it('bounds the prune settings', () => {
    expect(invalid({ pool, pruneIntervalMs: 999 }).message).toBe('PostgresStore option "pruneIntervalMs" must be at least 1000 ms');
    expect(invalid({ pool, pruneIntervalMs: 2 ** 31 }).message).toMatch(/^PostgresStore option "pruneIntervalMs" must be at most/);
    expect(invalid({ pool, pruneBatchSize: 0 }).message).toMatch(/^PostgresStore option "pruneBatchSize"/);
    expect(invalid({ pool, onPruneError: 'log' }).message).toBe('PostgresStore option "onPruneError" must be a function');
    expect(invalid({ pool, createSchema: 'yes' }).message).toMatch(/^PostgresStore option "createSchema"/);
  });

  it('transaction: needs run and query functions, nothing else', () => {
    const run = async <T>(work: (tx: unknown) => Promise<T>) => work(undefined);
    const query = async () => ({ rows: [] });
    expect(invalid({ pool, transaction: { run } }).message).toMatch(/^PostgresStore option "transaction.query" must be a function/);
    expect(invalid({ pool, transaction: { run: 'BEGIN', query } }).message).toMatch(/^PostgresStore option "transaction.run" must be a function/);
    expect(invalid({ pool, transaction: { run, query, commit: query } }).message).toBe('PostgresStore option "transaction.commit" is not a PostgresStore option');
    expect(invalid({ pool, transaction: run }).message).toMatch(/^PostgresStore option "transaction"/);
    expect(new PostgresStore<unknown>({ pool, transaction: { run, query } }).tables.table).toBe('onceonly_records');
  });

  it('accepts custom names, mixed case included', () => {
    const store = new PostgresStore({ pool, schema: 'App', table: 'Dedup_1', marksTable: '_marks', preparedStatements: false });
    expect(store.tables).toEqual({ schema: 'App', table: 'Dedup_1', marksTable: '_marks' });
  });
});

describe('SQL identifiers', () => {
  it('quotes: double quotes around, inner ones doubled; refuses NUL', () => {
    expect(quoteIdentifier('onceonly_records')).toBe('"onceonly_records"');
    expect(quoteIdentifier('Mixed')).toBe('"Mixed"');
    expect(quoteIdentifier('a"b')).toBe('"a""b"');
    expect(quoteIdentifier('"; DROP TABLE x; --')).toBe('"""; DROP TABLE x; --"');
    expect(() => quoteIdentifier('a\u0000b')).toThrow(TypeError);
  });

  it('a quoted name always parses back to itself: one token, closing quote last', () => {
    for (const name of ['a', 'a"', '"', '""', 'a""b', 'x"y"z', ' ', 'ü']) {
      const quoted = quoteIdentifier(name);
      expect(quoted.startsWith('"') && quoted.endsWith('"')).toBe(true);
      // Inside, every quote is doubled: undoing that gives the name back.
      expect(quoted.slice(1, -1).replaceAll('""', '"')).toBe(name);
      expect(quoted.slice(1, -1).replaceAll('""', '')).not.toContain('"');
    }
  });

  it('accepts letters, digits and "_" not starting with a digit, within the length', () => {
    expect(identifierProblem('onceonly_records', 48)).toBeUndefined();
    expect(identifierProblem('_x9', 48)).toBeUndefined();
    expect(identifierProblem('9x', 48)).toBeDefined();
    expect(identifierProblem('a-b', 48)).toBeDefined();
    expect(identifierProblem('abc', 2)).toBe('must be at most 2 characters');
  });
});

describe('schema SQL', () => {
  it('the shipped sql/schema.sql is schemaSql() of the default names', () => {
    const shipped = readFileSync(fileURLToPath(new URL('../sql/schema.sql', import.meta.url)), 'utf8');
    expect(shipped, 'sql/schema.sql is out of date: npm run schema:sql -w packages/postgres').toBe(schemaSql());
  });

  it('quotes custom names everywhere and names the index after the table', () => {
    const sql = schemaSql({ schema: 'App', table: 'Dedup', marksTable: 'Marks' });
    expect(sql).toContain('CREATE TABLE IF NOT EXISTS "App"."Dedup" (');
    expect(sql).toContain('CREATE INDEX IF NOT EXISTS "Dedup_expires_at_idx" ON "App"."Dedup" (expires_at);');
    expect(sql).toContain('CREATE TABLE IF NOT EXISTS "App"."Marks" (');
    expect(sql).not.toMatch(/onceonly_(records|marks)/);
  });
});
