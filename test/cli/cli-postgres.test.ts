// The built `onceonly` executable against a real PostgreSQL (`--postgres`): every command, --json
// output (inspect names the table instead of a key), confirmation and refusal, progress, hostile IDs
// round-tripping, custom tables, and exit codes (not found, usage, database unreachable or silent
// within the timeout, a statement stuck behind a lock, missing tables, missing optional packages).
import { mkdtemp, mkdir, rm, symlink } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ExitCode } from '@onceonly/cli';
import type { PostgresStore } from '@onceonly/postgres';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { qualify } from '../../packages/postgres/src/sql.js';
import { ADMIN_HOSTILE_IDS } from '../conformance/admin-conformance.js';
import { HOSTILE_IDS } from '../conformance/store-conformance.js';
import { usePostgres } from '../postgres/postgres-test-context.js';
import { freePort } from '../support/redis-server.js';
import { assertBuilt, json, runCli, type CliRun, type RunOptions } from './run-cli.js';

const WINDOW = 3_600_000;
const LEASE = 60_000;

interface Listed {
  id: string | null;
  keyPart: string;
  hashed: boolean;
  record: { state: string; token: number; suspect: boolean; leaseExpired: boolean; result?: string };
}
interface ListDoc {
  scope: string;
  entries: Listed[];
  cursor: string | null;
}

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

/** Runs `work` over `items`, `width` at a time (each CLI run is a Node process: keep the cores for others). */
async function pool<T, R>(items: readonly T[], width: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await work(items[i]!);
      }
    }),
  );
  return results;
}

async function complete(scope: string, ids: readonly string[], result?: (id: string) => string): Promise<void> {
  const claims = await store.claimMany(ids.map((id) => ({ scope, id, leaseMs: LEASE, windowMs: WINDOW })));
  const done = await store.completeMany(
    claims.map((c, i) => ({ scope, id: ids[i]!, token: c.status === 'acquired' ? c.token : -1, windowMs: WINDOW, ...(result ? { result: result(ids[i]!) } : {}) })),
  );
  expect(new Set(done)).toEqual(new Set(['ok']));
}

async function claim(scope: string, id: string): Promise<number> {
  const result = await store.claim({ scope, id, leaseMs: LEASE, windowMs: WINDOW });
  if (result.status !== 'acquired') throw new Error(`expected acquired, got ${result.status}`);
  return result.token;
}

describe('onceonly --postgres inspect', () => {
  it('prints a record with its table (no key) as a table and as JSON, and exits 1 for an absent one', async () => {
    await complete('orders', ['o-1'], () => '{"total":42}');
    const token = await claim('orders', 'o-2');

    const table = await cli(['inspect', 'orders', 'o-1']);
    expect(table.code, table.stderr).toBe(ExitCode.OK);
    expect(table.stdout).toMatch(/^state +completed$/m);
    expect(table.stdout).toMatch(/^result +"\{\\"total\\":42\}"$/m);
    expect(table.stdout).toMatch(new RegExp(`^table +${schema}\\.onceonly_records$`, 'm'));
    expect(table.stdout).not.toMatch(/^key /m);

    const doc = json(await cli(['--json', 'inspect', 'orders', 'o-2']));
    expect(doc).toMatchObject({
      found: true,
      scope: 'orders',
      id: 'o-2',
      key: null,
      table: `${schema}.onceonly_records`,
      record: { state: 'in-progress', token, leaseExpired: false, suspect: false },
    });

    const absent = await cli(['inspect', 'orders', 'nope']);
    expect(absent.code).toBe(ExitCode.NOT_FOUND);
    expect(absent.stdout).toBe('');
    expect(absent.stderr).toMatch(/no record of nope in scope orders/);
    const absentJson = await cli(['--json', 'inspect', 'orders', 'nope']);
    expect(absentJson.code).toBe(ExitCode.NOT_FOUND);
    expect(json(absentJson)).toEqual({ found: false, scope: 'orders', id: 'nope', key: null, table: `${schema}.onceonly_records` });
  });
});

describe('onceonly --postgres list', () => {
  it('filters by --state, honours --limit, and pages with --cursor in ID order without repeats', async () => {
    const done = Array.from({ length: 60 }, (_, i) => `done-${String(i).padStart(2, '0')}`);
    const running = Array.from({ length: 15 }, (_, i) => `run-${String(i).padStart(2, '0')}`);
    await complete('big', done);
    for (const id of running) await claim('big', id);
    await complete('big-other', ['done-01']);

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const run = await cli(['--json', 'list', 'big', '--limit', '20', '--batch-size', '5', ...(cursor ? ['--cursor', cursor] : [])]);
      expect(run.code, run.stderr).toBe(ExitCode.OK);
      const page = json<ListDoc>(run);
      expect(page.entries.length).toBeLessThanOrEqual(20);
      expect(page.entries.every((e) => e.keyPart === e.id && !e.hashed)).toBe(true);
      seen.push(...page.entries.map((e) => e.id!));
      cursor = page.cursor;
      pages++;
    } while (cursor !== null);
    expect(pages).toBe(4);
    expect(seen).toEqual([...done, ...running]); // ID order: the primary key's

    const inProgress = json<ListDoc>(await cli(['--json', 'list', 'big', '--state', 'in-progress', '--limit', '1000', '--batch-size', '7']));
    expect(inProgress.cursor).toBeNull();
    expect(inProgress.entries.map((e) => e.id)).toEqual(running);

    const three = await cli(['list', 'big', '--state', 'completed', '--limit', '3']);
    const lines = three.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ID +STATE +UPDATED +EXPIRES IN +FLAGS$/);
    expect(lines.slice(1, 4).map((line) => line.split(' ')[0])).toEqual(['done-00', 'done-01', 'done-02']);
    expect(lines.slice(1, 4).every((line) => /^done-\d+ +completed +\S+Z +\d+m\d+s +-$/.test(line))).toBe(true);
    expect(lines[4]).toMatch(/^more: --cursor p1\.[A-Za-z0-9_-]+$/);
    const next = json<ListDoc>(await cli(['--json', 'list', 'big', '--state', 'completed', '--limit', '2', '--cursor', lines[4]!.slice('more: --cursor '.length)]));
    expect(next.entries.map((e) => e.id)).toEqual(['done-03', 'done-04']);

    expect((await cli(['list', 'big', '--state', 'failed'])).stdout.trim()).toBe('(no failed records)');
    const foreign = await cli(['list', 'big', '--cursor', '1536:o-7731']);
    expect(foreign.code).toBe(ExitCode.USAGE);
    expect(foreign.stderr).toMatch(/not a cursor this store handed out/);
  });
});

describe('onceonly --postgres purge', () => {
  it('removes one record with --yes; --dry-run and a refused purge leave it', async () => {
    await complete('orders', ['o-1', 'o-2']);
    const dry = await cli(['--json', 'purge', 'orders', 'o-1', '--dry-run']);
    expect(json(dry)).toEqual({ scope: 'orders', id: 'o-1', found: true, purged: false, dryRun: true, state: 'completed' });
    const refused = await cli(['purge', 'orders', 'o-1'], { input: 'y\n' });
    expect(refused.code).toBe(ExitCode.REFUSED);
    expect(refused.stderr).toMatch(/stdin is not a terminal\. Pass --yes/);
    expect(await store.get('orders', 'o-1')).toMatchObject({ state: 'completed' });

    const purged = await cli(['purge', 'orders', 'o-1', '--yes']);
    expect(purged.code, purged.stderr).toBe(ExitCode.OK);
    expect(purged.stdout).toMatch(/purged the completed record of o-1 in scope orders/);
    expect(await store.inspect('orders', 'o-1')).toBeUndefined();
    expect(await store.get('orders', 'o-2')).toMatchObject({ state: 'completed' });
    const again = await cli(['--json', 'purge', 'orders', 'o-1', '--yes']);
    expect(again.code).toBe(ExitCode.NOT_FOUND);
    expect(json(again)).toMatchObject({ found: false, purged: false });
  });

  it('purges a whole scope: --dry-run counts, no --yes on a pipe refuses, --yes removes with progress on stderr', async () => {
    const ids = Array.from({ length: 300 }, (_, i) => `r-${i}`);
    await complete('gone', ids);
    await complete('gone:kept', ['r-1']);
    await complete('gon', ['r-1']);
    await store.completeManyMarked({ scope: 'gone', name: 'orders:0' }, [], { from: 0, to: 9 });

    const dry = await cli(['--json', 'purge', '--scope', 'gone', '--dry-run', '--batch-size', '50']);
    expect(dry.code, dry.stderr).toBe(ExitCode.OK);
    expect(json(dry)).toEqual({ scope: 'gone', records: 300, marks: 0, dryRun: true, aborted: false });
    expect((await store.countByState('gone')).total).toBe(300);

    const refused = await cli(['purge', '--scope', 'gone']);
    expect(refused.code).toBe(ExitCode.REFUSED);
    expect(refused.stdout).toBe('');
    expect((await store.countByState('gone')).total).toBe(300);

    const purged = await cli(['--json', 'purge', '--scope', 'gone', '--yes', '--batch-size', '20']);
    expect(purged.code, purged.stderr).toBe(ExitCode.OK);
    expect(json(purged)).toEqual({ scope: 'gone', records: 300, marks: 0, dryRun: false, aborted: false });
    expect(purged.stderr).toMatch(/^onceonly: purged \d+ records? so far$/m);
    expect((await store.countByState('gone')).total).toBe(0);
    expect(await store.get('gone:kept', 'r-1')).toMatchObject({ state: 'completed' });
    expect(await store.get('gon', 'r-1')).toMatchObject({ state: 'completed' });
    expect(await store.getMark({ scope: 'gone', name: 'orders:0' })).toEqual({ low: 0, high: 9 });

    const marks = await cli(['purge', '--scope', 'gone', '--yes', '--include-marks']);
    expect(marks.stdout.trim()).toBe('purged 0 records and 1 offset mark of scope gone');
    expect(await store.getMark({ scope: 'gone', name: 'orders:0' })).toBeUndefined();
  });
});

describe('onceonly --postgres mark', () => {
  it('gets a mark, refuses to forget it without --yes, forgets it with --yes', async () => {
    await store.completeManyMarked({ scope: 'billing', name: 'invoices:3' }, [], { from: 0, to: 41 });
    const args = ['--group', 'billing', '--topic', 'invoices', '--partition', '3'];

    const got = await cli(['--json', 'mark', 'get', ...args]);
    expect(got.code, got.stderr).toBe(ExitCode.OK);
    expect(json(got)).toEqual({ group: 'billing', topic: 'invoices', partition: 3, found: true, mark: { low: 0, high: 41 } });
    expect((await cli(['mark', 'get', ...args])).stdout).toMatch(/^completed offsets +0\.\.41$/m);
    expect((await cli(['mark', 'get', '--group', 'billing', '--topic', 'invoices', '--partition', '4'])).code).toBe(ExitCode.NOT_FOUND);

    expect((await cli(['mark', 'forget', ...args])).code).toBe(ExitCode.REFUSED);
    expect((await cli(['mark', 'forget', ...args, '--dry-run'])).code).toBe(ExitCode.OK);
    expect(await store.getMark({ scope: 'billing', name: 'invoices:3' })).toEqual({ low: 0, high: 41 });
    const forgot = await cli(['--json', 'mark', 'forget', ...args, '--yes']);
    expect(json(forgot)).toMatchObject({ found: true, forgotten: true, mark: { low: 0, high: 41 } });
    expect(await store.getMark({ scope: 'billing', name: 'invoices:3' })).toBeUndefined();
    expect((await cli(['mark', 'forget', ...args, '--yes'])).code).toBe(ExitCode.NOT_FOUND);
  });
});

describe('onceonly --postgres stats', () => {
  it('counts a scope by state; expired records are not counted', async () => {
    await complete('c', ['a', 'b', 'c', 'old']);
    const failed = await claim('c', 'f');
    await store.fail({ scope: 'c', id: 'f', token: failed, error: 'E', windowMs: WINDOW });
    const released = await claim('c', 'r');
    await store.release({ scope: 'c', id: 'r', token: released });
    await claim('c', 'p');
    const records = qualify(store.tables).records;
    await postgres.admin.query(`UPDATE ${records} SET lease_until = now() - interval '1 second' WHERE id = 'p'`); // its lease ran out
    await postgres.admin.query(`UPDATE ${records} SET expires_at = now() - interval '1 second' WHERE id = 'old'`); // its window is over
    await store.completeManyMarked({ scope: 'c', name: 't:0' }, [], { from: 1, to: 2 });

    const doc = json(await cli(['--json', 'stats', 'c']));
    expect(doc).toEqual({
      scope: 'c',
      counts: { 'in-progress': 1, completed: 3, failed: 1, released: 1, total: 6, leaseExpired: 1, suspect: 0, marks: 1 },
    });
    const table = await cli(['stats', 'c', '--batch-size', '2']);
    expect(table.stdout).toMatch(/^completed +3$/m);
    expect(table.stdout).toMatch(/^total +6$/m);
    expect(table.stdout).toMatch(/^ {2}lease expired +1$/m);
  });

  it('works on custom tables (--pg-table, --pg-marks-table) and reads the URL from ONCEONLY_POSTGRES_URL', async () => {
    store = await postgres.store({ table: 'Dedup', marksTable: 'Dedup_Marks' });
    schema = store.tables.schema;
    await complete('s', ['a', 'b']);
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

describe('onceonly --postgres with hostile IDs', () => {
  it('round-trip: list gives them back, inspect and purge reach them with --id-json (or as arguments)', async () => {
    const ids = [...new Set([...HOSTILE_IDS, ...ADMIN_HOSTILE_IDS, '-starts-with-dash', '\u001b[2J'])];
    const scope = "hostile:{scope}%_'\\";
    await complete(scope, ids, (id) => `r:${id.length}`);

    const listed = json<ListDoc>(await cli(['--json', 'list', scope, '--limit', '1000']));
    expect(new Set(listed.entries.map((e) => e.id))).toEqual(new Set(ids));
    expect(listed.entries.every((e) => !e.hashed && e.keyPart === e.id)).toBe(true);

    const sample = ["'", '\\', '%', '_', "'; DROP TABLE onceonly_records; --", 'a\r\nb', '\u202e', 'x'.repeat(2048), 'é'.repeat(1024), '\u001b[2J'];
    expect(sample.every((id) => ids.includes(id))).toBe(true);
    const inspected = await pool(sample, 3, (id) => cli(['--json', 'inspect', scope, '--id-json', JSON.stringify(id)]));
    inspected.forEach((run, i) => {
      expect(run.code, `${JSON.stringify(sample[i])}: ${run.stderr}`).toBe(ExitCode.OK);
      expect(json(run), JSON.stringify(sample[i])).toMatchObject({ found: true, id: sample[i], record: { state: 'completed', result: `r:${sample[i]!.length}` } });
    });
    const plain = ['a:b', '{a}', '?[]^\\', ' ', 'u\u0308', '-starts-with-dash', '%_%'];
    const byArgument = await pool(plain, 3, (id) => cli(['--json', 'inspect', scope, '--', id]));
    byArgument.forEach((run, i) => expect(json(run), plain[i]).toMatchObject({ found: true, id: plain[i] }));
    const table = await cli(['list', scope, '--limit', '1000']);
    expect(table.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f]/);
    expect(table.stdout).toContain('"\\u001b[2J"');

    // What PostgreSQL text cannot hold is refused as a bad argument, not looked for.
    const nul = await cli(['inspect', scope, '--id-json', '"a\\u0000b"']);
    expect(nul.code).toBe(ExitCode.USAGE);
    expect(nul.stderr).toMatch(/contains U\+0000/);

    const doomed = ["'", '%', 'a\nb', 'x'.repeat(2048), '-starts-with-dash'];
    const purged = await pool(doomed, 3, (id) => cli(['--json', 'purge', scope, '--id-json', JSON.stringify(id), '--yes']));
    purged.forEach((run, i) => expect(json(run), JSON.stringify(doomed[i])).toMatchObject({ found: true, purged: true }));
    const left = json<ListDoc>(await cli(['--json', 'list', scope, '--limit', '1000']));
    expect(left.entries).toHaveLength(ids.length - doomed.length);
    for (const id of doomed) expect(await store.inspect(scope, id), JSON.stringify(id)).toBeUndefined();
    expect(await store.inspect(scope, '%_%')).toMatchObject({ state: 'completed' }); // not taken for a pattern
  });
});

describe('onceonly --postgres exit codes without a healthy database', () => {
  it('3 within the timeout when PostgreSQL is unreachable or silent, never hanging, never showing the password', async () => {
    const refused = await runCli(['--postgres', `postgres://app:secret@127.0.0.1:${await freePort()}/app`, 'stats', 'x']);
    expect(refused.code).toBe(ExitCode.STORE_UNAVAILABLE);
    expect(refused.stderr).toMatch(/cannot reach PostgreSQL at postgres:\/\/app:\*\*\*@127\.0\.0\.1:\d+\/app: .*ECONNREFUSED/);
    expect(refused.stderr).not.toContain('secret');
    expect(refused.ms).toBeLessThan(5_000);

    // Accepts connections and never answers: only the timeout can end this.
    const sockets: Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const port = (silent.address() as { port: number }).port;
      const hung = await runCli(['--postgres', `postgres://app@127.0.0.1:${port}/app?password=secret`, '--timeout', '500', '--json', 'list', 'x']);
      expect(hung.code).toBe(ExitCode.STORE_UNAVAILABLE);
      expect(hung.stderr).toMatch(/cannot reach PostgreSQL at .*: (no answer within 500 ms|.*timeout)/);
      expect(hung.stderr).not.toContain('secret');
      expect(hung.stdout).toBe('');
      expect(hung.ms).toBeLessThan(5_000);
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });

  it('3 when a statement cannot finish within --timeout (a purge stuck behind a lock)', async () => {
    await complete('locked', ['a']);
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

  it('5 with an install hint when the optional @onceonly/postgres and pg are not installed', async () => {
    // An install of @onceonly/cli with its dependencies only: symlinks, resolved where they are.
    const root = fileURLToPath(new URL('../../', import.meta.url));
    const sandbox = await mkdtemp(join(tmpdir(), 'onceonly-cli-'));
    try {
      const modules = join(sandbox, 'node_modules');
      await mkdir(join(modules, '@onceonly'), { recursive: true });
      await symlink(join(root, 'packages/cli'), join(modules, '@onceonly/cli'));
      await symlink(join(root, 'packages/core'), join(modules, '@onceonly/core'));
      await symlink(join(root, 'node_modules/commander'), join(modules, 'commander'));
      await symlink(join(root, 'node_modules/zod'), join(modules, 'zod'));
      const run = await runCli(['--postgres', postgres.url, 'stats', 's'], {
        bin: join(modules, '@onceonly/cli/dist/bin.js'),
        nodeArgs: ['--preserve-symlinks', '--preserve-symlinks-main'],
      });
      expect(run.code, run.stderr).toBe(ExitCode.MISSING_DEPENDENCY);
      expect(run.stderr).toMatch(/cannot load (@onceonly\/postgres|pg), an optional dependency of @onceonly\/cli\. --postgres needs both: npm install @onceonly\/postgres pg/);
    } finally {
      await rm(sandbox, { recursive: true, force: true });
    }
  });
});
