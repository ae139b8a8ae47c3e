// The built `onceonly` executable against a real PostgreSQL (`--postgres`): the command tests every
// store shares (cli-commands.ts: every command, --json output, confirmation and refusal, progress,
// hostile IDs round-tripping, exit codes for not found, an unreachable or silent database and missing
// optional packages; inspect names the table instead of a key), then what is PostgreSQL's own: custom
// tables, IDs PostgreSQL text cannot hold, a statement stuck behind a lock, and refused schema or
// table names.
import { ExitCode } from '@onceonly/cli';
import type { PostgresStore } from '@onceonly/postgres';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { qualify } from '../../packages/postgres/src/sql.js';
import { usePostgres } from '../postgres/postgres-test-context.js';
import { complete, describeCliCommands } from './cli-commands.js';
import { assertBuilt, json, runCli, type CliRun, type RunOptions } from './run-cli.js';

const postgres = usePostgres();
let store: PostgresStore;
let schema: string;

beforeAll(() => assertBuilt());
beforeEach(async () => {
  store = await postgres.store();
  schema = store.tables.schema;
});

/** `onceonly --postgres <shared> --pg-schema <this test's> ...args`. */
const cli = (args: readonly string[], options?: RunOptions): Promise<CliRun> => runCli(['--postgres', postgres.url, '--pg-schema', schema, ...args], options);

/** Sets `set` on the record of `scope` and `id` in the current test's table. */
async function updateRecord(set: string, scope: string, id: string): Promise<void> {
  const { rowCount } = await postgres.admin.query(`UPDATE ${qualify(store.tables).records} SET ${set} WHERE scope = $1 AND id = $2`, [scope, id]);
  expect(rowCount).toBe(1);
}

describeCliCommands({
  name: 'postgres',
  url: () => postgres.url,
  urlEnv: 'ONCEONLY_POSTGRES_URL',
  packages: ['@onceonly/postgres', 'pg'],
  store: () => store,
  scoping: () => ['--pg-schema', schema],
  where: () => ({ key: null, table: `${schema}.onceonly_records` }),
  expireLease: (scope, id) => updateRecord("lease_until = now() - interval '1 second'", scope, id),
  expireRecord: (scope, id) => updateRecord("expires_at = now() - interval '1 second'", scope, id),
  entryOf: (id) => ({ id, keyPart: id }),
  ordered: true,
  cursor: /p1\.[A-Za-z0-9_-]+/,
  foreignCursor: '1536:o-7731', // a Redis store's
  hostile: { ids: [], sample: [], doomed: [] },
  refusedUrl: (port) => `postgres://app:secret@127.0.0.1:${port}/app`,
  silentUrl: (port) => `postgres://app@127.0.0.1:${port}/app?password=secret`,
  refused: /cannot reach PostgreSQL at postgres:\/\/app:\*\*\*@127\.0\.0\.1:\d+\/app: .*ECONNREFUSED/,
  silent: /cannot reach PostgreSQL at .*: (no answer within 500 ms|.*timeout)/,
});

describe('onceonly --postgres on custom tables', () => {
  it('works on custom tables (--pg-table, --pg-marks-table) and reads the URL from ONCEONLY_POSTGRES_URL', async () => {
    store = await postgres.store({ table: 'Dedup', marksTable: 'Dedup_Marks' });
    schema = store.tables.schema;
    await complete(store, 's', ['a', 'b']);
    await store.completeManyMarked({ scope: 's', name: 't:0' }, [], { from: 0, to: 1 });
    const tables = ['--pg-table', 'Dedup', '--pg-marks-table', 'Dedup_Marks'];
    expect(json(await cli(['--json', ...tables, 'stats', 's']))).toMatchObject({ counts: { completed: 2, total: 2, marks: 1 } });
    const env = await runCli(['--pg-schema', schema, ...tables, '--json', 'inspect', 's', 'a'], { env: { ONCEONLY_POSTGRES_URL: postgres.url } });
    expect(json(env)).toMatchObject({ found: true, table: `${schema}.Dedup`, record: { state: 'completed' } });
    // The default table does not exist in this schema: the command says so, and how to create it.
    const missing = await cli(['stats', 's']);
    expect(missing.code).toBe(ExitCode.STORE_UNAVAILABLE);
    expect(missing.stderr).toMatch(/42P01 \(undefined_table\).*does not exist; run store\.migrate\(\)/);
  });
});

describe('onceonly --postgres with IDs PostgreSQL text cannot hold', () => {
  it('refuses them as a bad argument, not looked for', async () => {
    const nul = await cli(['inspect', 'hostile', '--id-json', '"a\\u0000b"']);
    expect(nul.code).toBe(ExitCode.USAGE);
    expect(nul.stderr).toMatch(/contains U\+0000/);
  });
});

describe('onceonly --postgres exit codes without a healthy database', () => {
  it('3 when a statement cannot finish within --timeout (a purge stuck behind a lock)', async () => {
    await complete(store, 'locked', ['a']);
    const holder = await postgres.admin.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM ${qualify(store.tables).records} WHERE scope = 'locked' AND id = 'a' FOR UPDATE`);
      const stuck = await cli(['--timeout', '500', 'purge', 'locked', 'a', '--yes']);
      expect(stuck.code).toBe(ExitCode.STORE_UNAVAILABLE);
      expect(stuck.stderr).toMatch(/PostgreSQL store unavailable during purge: PostgreSQL error 57014 \(query_canceled\)/);
      expect(stuck.ms).toBeLessThan(5_000);
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
    expect(await store.get('locked', 'a')).toMatchObject({ state: 'completed' });
  });

  it('2 for a schema or table name the store refuses, naming the CLI option', async () => {
    const bad = await cli(['--pg-table', 'no-dashes', 'stats', 's']);
    expect(bad.code).toBe(ExitCode.USAGE);
    expect(bad.stderr).toMatch(/--pg-table must be letters, digits and "_"/);
    const both = await runCli(['--postgres', postgres.url, '--redis', 'redis://127.0.0.1:1', 'stats', 's']);
    expect(both.code).toBe(ExitCode.USAGE);
    expect(both.stderr).toMatch(/--redis and --postgres are mutually exclusive/);
  });
});
