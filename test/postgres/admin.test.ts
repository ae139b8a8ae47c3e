// The AdminStore capability of the PostgreSQL store on a real PostgreSQL: the shared admin suite
// (test/conformance/admin-conformance.ts), then what is PostgreSQL's own: entries in ID byte order
// with their IDs, opaque cursors, statements that walk the primary key in bounded keyset steps (no
// OFFSET, no LIKE, values only as parameters), plans that use the primary key, and custom names.
import { supportsAdmin } from '@onceonly/core';
import { MAX_ID_BYTES, PostgresStore, type PostgresStoreOptions } from '@onceonly/postgres';
import pg from 'pg';
import { describe, expect, it, vi } from 'vitest';
import { buildAdminStatements, decodeCursor, encodeCursor } from '../../packages/postgres/src/admin.js';
import { qualify, quoteIdentifier } from '../../packages/postgres/src/sql.js';
import { describeAdminConformance, type AdminTestStore } from '../conformance/admin-conformance.js';
import { freePort } from '../support/redis-server.js';
import { usePostgres } from './postgres-test-context.js';

const postgres = usePostgres();
const WINDOW = 60_000;
const LEASE = 30_000;


const tableOf = (store: PostgresStore): string => qualify(store.tables).records;

async function update(store: AdminTestStore, scope: string, id: string, set: string): Promise<void> {
  const result = await postgres.admin.query(`UPDATE ${tableOf(store as PostgresStore)} SET ${set} WHERE scope = $1 AND id = $2`, [scope, id]);
  expect(result.rowCount).toBe(1);
}

describeAdminConformance('postgres', () => ({
  store: () => postgres.store(),
  unreachable: async () => {
    const pool = new pg.Pool({ connectionString: `postgres://onceonly@127.0.0.1:${await freePort()}/onceonly`, connectionTimeoutMillis: 2_000, max: 1 });
    pool.on('error', () => {});
    return { store: new PostgresStore({ pool }), close: () => pool.end() };
  },
  // The longest IDs the store keeps (besides the shared suite's hostile IDs).
  hostileIds: ['x'.repeat(MAX_ID_BYTES), 'é'.repeat(MAX_ID_BYTES / 2), '😀'.repeat(MAX_ID_BYTES / 4), '日'.repeat(Math.floor(MAX_ID_BYTES / 3))],
  entryOf: (id) => ({ id, keyPart: id }),
  // 1 ms after the epoch, as the Redis tests do.
  expireLease: (store, scope, id) => update(store, scope, id, `lease_until = 'epoch'::timestamptz + interval '1 millisecond'`),
  expireRecord: (store, scope, id) =>
    update(store, scope, id, `expires_at = statement_timestamp() - interval '1 second', lease_until = least(lease_until, statement_timestamp() - interval '1 second')`),
}));

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  Plans?: PlanNode[];
}

const flatten = (node: PlanNode): PlanNode[] => [node, ...(node.Plans ?? []).flatMap(flatten)];

/** Claims and completes `ids` in `scope`. */
async function completed(store: PostgresStore, scope: string, ids: readonly string[]): Promise<void> {
  const claims = await store.claimMany(ids.map((id) => ({ scope, id, leaseMs: LEASE, windowMs: WINDOW })));
  const done = await store.completeMany(claims.map((c, i) => ({ scope, id: ids[i]!, token: c.status === 'acquired' ? c.token : -1, windowMs: WINDOW })));
  expect(new Set(done)).toEqual(new Set(['ok']));
}

/** Inserts `count` completed rows into `scope` directly (faster than claims, for plan tests). */
async function fill(store: PostgresStore, scope: string, count: number): Promise<void> {
  await postgres.admin.query(
    `INSERT INTO ${tableOf(store)} (token, claimed_at, updated_at, lease_until, expires_at, state, scope, id)
     SELECT 1, now(), now(), now(), now() + interval '1 hour', 2, $1, 'id-' || lpad(i::text, 6, '0') FROM generate_series(1, $2::int) AS i`,
    [scope, count],
  );
}

describe('PostgresStore as an AdminStore', () => {
  it('lists in ID byte order (UTF-8, as the primary key sorts), every entry with its ID as its key part', async () => {
    const store = await postgres.store();
    const ids = ['b', 'a', 'B', '\uFFFF', '😀', 'é', 'a\u0001', 'aa', '_', '%', 'z'];
    await completed(store, 'order', ids);
    const entries = [];
    let cursor: string | undefined;
    do {
      const page = await store.list('order', { limit: 3, batchSize: 2, ...(cursor ? { cursor } : {}) });
      entries.push(...page.entries);
      cursor = page.cursor;
    } while (cursor);
    const byteOrder = [...ids].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    expect(entries.map((e) => e.id)).toEqual(byteOrder);
    expect(entries.every((e) => e.keyPart === e.id)).toBe(true);
  });

  it('hands out opaque, command-line safe cursors and refuses any other', async () => {
    const store = await postgres.store();
    const ids = ["it's", 'a\nb', 'x'.repeat(MAX_ID_BYTES), '😀'];
    await completed(store, 'c', ids);
    const page = await store.list('c', { limit: 1 });
    expect(page.cursor).toMatch(/^p1\.[A-Za-z0-9_-]+$/);
    for (const id of ids) expect(decodeCursor(encodeCursor(id))).toBe(id);
    expect(decodeCursor(undefined)).toBe('');
    const foreign = ['1536:o-7731', '0', 'p1.', 'p1.!!', 'p2.YQ', `p1.${Buffer.from('a\u0000').toString('base64url')}`, 'p1.YQ==', ' p1.YQ'];
    for (const cursor of foreign) await expect(store.list('c', { cursor }), cursor).rejects.toThrow(/not a cursor this store handed out/);
  });

  it('walks the primary key in bounded keyset steps: no OFFSET, no LIKE, scopes and IDs only as parameters', async () => {
    const pool = postgres.pool({ max: 2 });
    const schema = await postgres.freshSchema();
    const store = new PostgresStore({ pool, schema });
    await store.migrate();
    const scope = "sc%_'\\ope";
    const ids = Array.from({ length: 150 }, (_, i) => `id-${String(i).padStart(3, '0')}`);
    await completed(store, scope, ids);
    await store.completeManyMarked({ scope, name: 'topic:0' }, [], { from: 0, to: 1 });

    const spy = vi.spyOn(pool, 'query');
    try {
      const page = await store.list(scope, { limit: 40, batchSize: 10 });
      expect(page.entries).toHaveLength(40);
      const listed = spy.mock.calls.length;
      expect(listed).toBe(4); // 4 steps of 10 rows each
      const again = await store.list(scope, { limit: 40, batchSize: 10, cursor: page.cursor! });
      expect(again.entries[0]!.id).toBe('id-040');
      await store.list(scope, { state: 'failed', batchSize: 50 });
      await store.countByState(scope, { batchSize: 50 });
      await store.inspect(scope, 'id-001');
      await store.purgeScope(scope, { dryRun: true, batchSize: 50, includeMarks: true });
      await store.purge(scope, 'id-001');
      await store.purgeScope(scope, { batchSize: 50, includeMarks: true });
      const statements = spy.mock.calls.map(([config]) => config as unknown as { text: string; values: unknown[] });
      expect(statements.length).toBeGreaterThan(listed + 10);
      for (const { text, values } of statements) {
        expect(text).not.toMatch(/\b(OFFSET|I?LIKE|SIMILAR)\b/i);
        expect(text).not.toContain(scope);
        expect(text).not.toContain('id-0');
        expect(values[0]).toBe(scope);
      }
      // Every step over the scope is bounded by its LIMIT on an index range (scope = $1 AND key > $2).
      const steps = statements.filter(({ text }) => /ORDER BY (id|name) LIMIT \$3/.test(text));
      expect(steps.length).toBeGreaterThan(10);
    } finally {
      spy.mockRestore();
    }
    expect(await store.countByState(scope)).toMatchObject({ total: 0, marks: 0 });
  });

  it('plans every admin statement on the primary key, never a scan of the table', async () => {
    const store = await postgres.store();
    await fill(store, 'big', 20_000);
    for (let i = 0; i < 20; i++) await fill(store, `other-${i}`, 500);
    await postgres.admin.query(`ANALYZE ${tableOf(store)}`);
    const q = qualify(store.tables);
    const s = buildAdminStatements(q);
    const pkey = `${store.tables.table}_pkey`;
    const plans: [string, string, unknown[]][] = [
      ['inspect', s.inspect.text, ['big', 'id-000042']],
      ['list', s.listStep.text, ['big', 'id-001000', 500, 2, 101]],
      ['list (start)', s.listStep.text, ['big', '', 500, null, 101]],
      ['purge', s.purge.text, ['big', 'id-000042']],
      ['purge step', s.purgeStep.text, ['big', 'id-001000', 500, true]],
      ['dry-run step', s.purgeStep.text, ['big', 'id-001000', 500, false]],
      ['count step', s.countStep.text, ['big', '', 500]],
    ];
    for (const [what, text, values] of plans) {
      const { rows } = await postgres.admin.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(`EXPLAIN (FORMAT JSON) ${text}`, values);
      const nodes = flatten(rows[0]!['QUERY PLAN'][0].Plan);
      expect(nodes.some((n) => n['Index Name'] === pkey), what).toBe(true);
      expect(nodes.filter((n) => n['Node Type'] === 'Seq Scan' && n['Relation Name'] === store.tables.table), what).toEqual([]);
    }
  });

  it('deletes an expired row on purge (it is garbage) but answers that there was no record', async () => {
    const store = await postgres.store();
    await completed(store, 'e', ['old']);
    await postgres.admin.query(`UPDATE ${tableOf(store)} SET expires_at = now() - interval '1 second'`);
    expect(await store.purge('e', 'old')).toBe(false);
    expect((await postgres.admin.query(`SELECT 1 FROM ${tableOf(store)}`)).rowCount).toBe(0);
  });

  it('works on custom schema and table names, quoted', async () => {
    const schema = await postgres.freshSchema();
    const options: Partial<PostgresStoreOptions> = { schema, table: 'Dedup_Records', marksTable: 'Dedup_Marks' };
    const store = await postgres.store(options);
    expect(supportsAdmin(store)).toBe(true);
    await completed(store, 's', ['a', 'b']);
    await store.completeManyMarked({ scope: 's', name: 't:0' }, [], { from: 0, to: 1 });
    expect((await store.list('s')).entries.map((e) => e.id)).toEqual(['a', 'b']);
    expect(await store.countByState('s')).toMatchObject({ completed: 2, total: 2, marks: 1 });
    expect(await store.purgeScope('s', { includeMarks: true })).toEqual({ records: 2, marks: 1, dryRun: false, aborted: false });
    const left = await postgres.admin.query(`SELECT (SELECT count(*) FROM ${quoteIdentifier(schema)}."Dedup_Records")::int AS records, (SELECT count(*) FROM ${quoteIdentifier(schema)}."Dedup_Marks")::int AS marks`);
    expect(left.rows[0]).toEqual({ records: 0, marks: 0 });
  });

  it('refuses IDs and scopes PostgreSQL cannot keep, before sending anything', async () => {
    const store = await postgres.store();
    await expect(store.inspect('s', 'a\u0000b')).rejects.toMatchObject({ name: 'InvalidIdError' });
    await expect(store.purge('s', '\uD83D')).rejects.toMatchObject({ name: 'InvalidIdError' });
    await expect(store.list('s\u0000')).rejects.toBeInstanceOf(TypeError);
    await expect(store.purgeScope('x'.repeat(600))).rejects.toBeInstanceOf(TypeError);
  });
});
