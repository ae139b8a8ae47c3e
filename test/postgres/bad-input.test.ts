// Hostile IDs and scopes are kept verbatim and stay apart; what PostgreSQL cannot keep (U+0000, lone
// surrogates, keys beyond the index's size) is refused with a typed error before any statement is
// sent, so a bad message can never turn into a retriable store error that is redelivered forever.
import { DedupProcessor, InvalidIdError, StoreUnavailableError, validateId } from '@onceonly/core';
import { MAX_ID_BYTES, MAX_SCOPE_BYTES, PostgresStore } from '@onceonly/postgres';
import type pg from 'pg';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { usePostgres } from './postgres-test-context.js';

const postgres = usePostgres();
let store: PostgresStore;
let statements: ReturnType<typeof vi.fn<() => void>>;

beforeAll(async () => {
  store = await postgres.store();
  // Count what reaches the pool from here on.
  const pool = postgres.pool();
  statements = vi.fn<() => void>();
  const query = pool.query.bind(pool);
  pool.query = ((...args: Parameters<typeof pool.query>) => {
    statements();
    return query(...args);
  }) as typeof pool.query;
  store = new PostgresStore({ pool, schema: store.tables.schema });
});

const req = (id: string, scope = 'jobs') => ({ scope, id, leaseMs: 30_000, windowMs: 60_000 });

// Strings that mean something to SQL, to array literals (pg sends arrays as text), to LIKE, or to
// JSON, and look-alikes of each other.
const SQL_HOSTILE = [
  "'; DROP TABLE onceonly_records; --",
  "'",
  "''",
  '"',
  '\\',
  '\\\\',
  '{}',
  '{a,b}',
  '{"a"}',
  'NULL',
  'null',
  ',',
  '$1',
  '%',
  '_',
  '\u2028',
  '\uFEFF',
  'a\u200Bb',
  'ab',
  ' a',
  'a ',
  `x${'\u00e9'.repeat(100)}`,
];

describe('hostile IDs and scopes', () => {
  it('are kept verbatim, each its own record, in one batch and one by one', async () => {
    const batch = await store.claimMany(SQL_HOSTILE.map((id) => req(id)));
    expect(batch.map((c) => c.status)).toEqual(SQL_HOSTILE.map(() => 'acquired'));
    const tokens = batch.map((c) => (c.status === 'acquired' ? c.token : -1));
    for (const [i, id] of SQL_HOSTILE.entries()) {
      expect(await store.complete({ scope: 'jobs', id, token: tokens[i]!, result: id, windowMs: 60_000 })).toBe('ok');
    }
    for (const id of SQL_HOSTILE) expect(await store.get('jobs', id)).toMatchObject({ state: 'completed', result: id });
    const { rows } = await postgres.admin.query<{ id: string }>(
      `SELECT id FROM "${store.tables.schema}".onceonly_records WHERE scope = 'jobs' ORDER BY id`,
    );
    expect(rows.map((r) => r.id)).toEqual([...SQL_HOSTILE].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
    // The table survived the first ID.
    expect((await store.claim(req('after'))).status).toBe('acquired');
  });

  it('hostile scopes stay apart from each other and from their look-alikes', async () => {
    const scopes = SQL_HOSTILE.map((s) => `scope${s}`);
    const answers = await store.claimMany(scopes.map((scope) => req('same-id', scope)));
    expect(answers.map((c) => c.status)).toEqual(scopes.map(() => 'acquired'));
    expect((await store.claim(req('same-id', scopes[0]!))).status).toBe('in-progress');
  });

  it(`keeps IDs up to ${MAX_ID_BYTES} bytes and scopes up to ${MAX_SCOPE_BYTES} bytes of UTF-8`, async () => {
    const id = '\u00e9'.repeat(MAX_ID_BYTES / 2); // 2 bytes each
    const scope = '\u{1F600}'.repeat(MAX_SCOPE_BYTES / 4); // 4 bytes each
    const claim = await store.claim(req(id, scope));
    expect(claim.status).toBe('acquired');
    expect(await store.get(scope, id)).toMatchObject({ state: 'in-progress' });
  });
});

describe('what PostgreSQL cannot keep is refused before anything is sent', () => {
  const refused = async (action: () => Promise<unknown>): Promise<unknown> => {
    statements.mockClear();
    const error = await action().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeDefined();
    expect(error).not.toBeInstanceOf(StoreUnavailableError);
    expect(statements).not.toHaveBeenCalled();
    return error;
  };

  it('an ID with U+0000 or a lone surrogate: InvalidIdError ID_INVALID (validateId refuses them too)', async () => {
    for (const id of ['a\u0000b', '\u0000', 'a\uD800', '\uDC00b']) {
      expect(() => validateId(id)).toThrow(InvalidIdError);
      const error = await refused(() => store.claimMany([req('fine'), req(id)]));
      expect(error).toMatchObject({ name: 'InvalidIdError', code: 'ID_INVALID', retriable: false });
      await refused(() => store.complete({ scope: 'jobs', id, token: 1, windowMs: 1000 }));
      await refused(() => store.get('jobs', id));
    }
  });

  it('an empty or non-string ID: ID_MISSING / ID_INVALID; a longer one: ID_TOO_LONG', async () => {
    expect(await refused(() => store.claim(req('')))).toMatchObject({ code: 'ID_MISSING' });
    expect(await refused(() => store.claim(req(42 as unknown as string)))).toMatchObject({ code: 'ID_INVALID' });
    expect(await refused(() => store.claim(req('x'.repeat(MAX_ID_BYTES + 1))))).toMatchObject({ code: 'ID_TOO_LONG' });
  });

  it('a scope or mark name that is empty, holds U+0000 or is too long: TypeError', async () => {
    for (const scope of ['', 'a\u0000', 'x'.repeat(MAX_SCOPE_BYTES + 1), 'a\uD800']) {
      expect(await refused(() => store.claim(req('m', scope)))).toBeInstanceOf(TypeError);
    }
    expect(await refused(() => store.getMark({ scope: 'jobs', name: 'a\u0000' }))).toBeInstanceOf(TypeError);
    expect(await refused(() => store.claimManyMarked({ scope: 'jobs', name: 't:0' }, [{ ...req('m', 'other'), position: 1 }], true))).toBeInstanceOf(TypeError);
  });

  it('a fingerprint, result or error code with U+0000: TypeError', async () => {
    expect(await refused(() => store.claim({ ...req('m'), fingerprint: 'a\u0000' }))).toBeInstanceOf(TypeError);
    expect(await refused(() => store.complete({ scope: 'jobs', id: 'm', token: 1, result: '\u0000', windowMs: 1000 }))).toBeInstanceOf(TypeError);
    expect(await refused(() => store.fail({ scope: 'jobs', id: 'm', token: 1, error: 'E\u0000', windowMs: 1000 }))).toBeInstanceOf(TypeError);
  });

  it('a lease, window, token or position that is not a number it can keep: RangeError', async () => {
    for (const leaseMs of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 41]) {
      expect(await refused(() => store.claim({ ...req('m'), leaseMs }))).toBeInstanceOf(RangeError);
    }
    expect(await refused(() => store.complete({ scope: 'jobs', id: 'm', token: 1.5, windowMs: 1000 }))).toBeInstanceOf(RangeError);
    expect(await refused(() => store.release({ scope: 'jobs', id: 'm', token: 2 ** 60 }))).toBeInstanceOf(RangeError);
    expect(await refused(() => store.claimManyMarked({ scope: 'jobs', name: 't:0' }, [{ ...req('m'), position: -1 }], true))).toBeInstanceOf(RangeError);
    expect(await refused(() => store.completeManyMarked({ scope: 'jobs', name: 't:0' }, [], { from: 5, to: 4 }))).toBeInstanceOf(RangeError);
  });

  it('a fractional lease is rounded up to whole milliseconds, never shortened', async () => {
    const claim = await store.claim({ ...req('fractional'), leaseMs: 1000.2 });
    const record = await store.get('jobs', 'fractional');
    expect(claim.status === 'acquired' && claim.leaseUntil - record!.claimedAt).toBe(1001);
  });
});

describe('hostile IDs and scopes through a transactional handler', () => {
  it('each is processed once with its write on ctx.tx, kept verbatim; a redelivery of each is a duplicate', async () => {
    const own = await postgres.store();
    const ledger = `"${own.tables.schema}".ledger`;
    await postgres.admin.query(`CREATE TABLE ${ledger} (scope text NOT NULL, id text NOT NULL)`);
    for (const scope of ['pay', "pay'; --", 'pay\\']) {
      const processor = new DedupProcessor({ scope, store: own, recordResults: true });
      const book = async ({ tx, id }: { tx: pg.PoolClient; id: string }) => {
        await tx.query(`INSERT INTO ${ledger} (scope, id) VALUES ($1, $2)`, [scope, id]);
        return id; // recorded as the result, inside the same transaction
      };
      for (const id of SQL_HOSTILE) expect(await processor.process({ id }, book)).toMatchObject({ status: 'processed', result: id });
      for (const id of SQL_HOSTILE) expect(await processor.process({ id }, book)).toMatchObject({ status: 'duplicate', result: id });
      await processor.close();
    }
    const { rows } = await postgres.admin.query<{ scope: string; id: string; n: number }>(`SELECT scope, id, count(*)::int AS n FROM ${ledger} GROUP BY scope, id`);
    expect(rows).toHaveLength(3 * SQL_HOSTILE.length);
    expect(rows.every((r) => r.n === 1)).toBe(true);
    expect(new Set(rows.filter((r) => r.scope === "pay'; --").map((r) => r.id))).toEqual(new Set(SQL_HOSTILE));
  });
});
