// The `onceonly` commands every store answers the same way, run against each store from its own
// test file (cli.test.ts for Redis, cli-postgres.test.ts for PostgreSQL), as admin-conformance.ts is
// for the AdminStore: inspect, list and its cursors, purge of one record and of a scope, marks, stats,
// hostile IDs round-tripping, the URL from the environment, an unreachable or silent server, and the
// optional packages missing. What only one store has (Redis hashed keys and clusters, PostgreSQL
// tables, schemas and locks) stays in that store's file.
import { mkdtemp, mkdir, rm, symlink } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ExitCode } from '@onceonly/cli';
import { describe, expect, it } from 'vitest';
import { ADMIN_HOSTILE_IDS, type AdminTestStore } from '../conformance/admin-conformance.js';
import { HOSTILE_IDS } from '../conformance/store-conformance.js';
import { freePort } from '../support/redis-server.js';
import { json, pool, runCli, type CliRun, type ListDoc, type RunOptions } from './run-cli.js';

const WINDOW = 3_600_000;
const LEASE = 60_000;

/** What a store's test file provides to the shared command tests (read in tests only: the store is the current test's). */
export interface CliHarness {
  /** The store's option without its dashes, as in `--redis <url>`, `--postgres <url>`. */
  name: 'redis' | 'postgres';
  /** The server's URL. */
  url(): string;
  /** The environment variable the CLI reads the URL from when the option is absent. */
  urlEnv: string;
  /** The optional packages the option needs, as the install hint names them (`@onceonly/redis`, `ioredis`). */
  packages: readonly [string, string];
  /** The current test's store, isolated from every other test's. */
  store(): AdminTestStore;
  /** Options that point the CLI at the current test's records (`--prefix …`, `--pg-schema …`). */
  scoping(): string[];
  /** Where `inspect` says the record lives: its key, or its table. */
  where(scope: string, id: string): { key: string | null; table: string | null };
  /** Moves the lease of an in-progress record into the past, keeping the record. */
  expireLease(scope: string, id: string): Promise<void>;
  /** Ends the record's window now: the CLI must not count it. */
  expireRecord(scope: string, id: string): Promise<void>;
  /** The entry a listing answers for `id`: its `id` (absent when the store cannot recover it) and `keyPart`. */
  entryOf(id: string): { id?: string; keyPart: string };
  /** Whether `list` pages in ID order (the primary key's) rather than in no particular order (SCAN). */
  ordered: boolean;
  /** What this store's cursors look like (the `more: --cursor …` line of a table). */
  cursor: RegExp;
  /** A cursor some other store hands out, which this one must refuse. */
  foreignCursor: string;
  /** Hostile IDs beyond the shared ones: listed, a sample inspected, some purged. */
  hostile: { ids: readonly string[]; sample: readonly string[]; doomed: readonly string[] };
  /** A URL on `port` where nothing listens, and a URL with the password `secret` to a server that never answers. */
  refusedUrl(port: number): string;
  silentUrl(port: number): string;
  /** What stderr says in each case. */
  refused: RegExp;
  silent: RegExp;
}

/** Claims and completes `ids` in `scope`, each with `result(id)` when given. */
export async function complete(store: AdminTestStore, scope: string, ids: readonly string[], result?: (id: string) => string): Promise<void> {
  const claims = await store.claimMany(ids.map((id) => ({ scope, id, leaseMs: LEASE, windowMs: WINDOW })));
  const done = await store.completeMany(
    claims.map((c, i) => ({ scope, id: ids[i]!, token: c.status === 'acquired' ? c.token : -1, windowMs: WINDOW, ...(result ? { result: result(ids[i]!) } : {}) })),
  );
  expect(new Set(done)).toEqual(new Set(['ok']));
}

/** Claims `id` in `scope` and answers the token; throws unless acquired. */
export async function claim(store: AdminTestStore, scope: string, id: string): Promise<number> {
  const result = await store.claim({ scope, id, leaseMs: LEASE, windowMs: WINDOW });
  if (result.status !== 'acquired') throw new Error(`expected acquired, got ${result.status}`);
  return result.token;
}

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Hostile IDs every store's CLI must give back and reach (besides {@link HOSTILE_IDS} and {@link ADMIN_HOSTILE_IDS}). */
const CLI_HOSTILE_IDS = ['-starts-with-dash', '\u001b[2J'];
const SAMPLE = ["'", '\\', '%', '_', "'; DROP TABLE onceonly_records; --", 'a\r\nb', '\u202e', 'x'.repeat(2048), 'é'.repeat(1024), '\u001b[2J'];
const PLAIN = ['a:b', '{a}', '?[]^\\', ' ', 'u\u0308', '-starts-with-dash', '%_%'];
const DOOMED = ["'", '%', 'a\nb', 'x'.repeat(2048), '-starts-with-dash'];

export function describeCliCommands(h: CliHarness): void {
  const flag = `--${h.name}`;
  /** `onceonly --<store> <url> <this test's scoping> ...args`. */
  const cli = (args: readonly string[], options?: RunOptions): Promise<CliRun> => runCli([flag, h.url(), ...h.scoping(), ...args], options);
  const done = (scope: string, ids: readonly string[], result?: (id: string) => string) => complete(h.store(), scope, ids, result);
  const claimed = (scope: string, id: string) => claim(h.store(), scope, id);

  describe(`onceonly ${flag} inspect`, () => {
    it('prints a record and where it lives as a table and as JSON, and exits 1 for an absent one', async () => {
      await done('orders', ['o-1'], () => '{"total":42}');
      const token = await claimed('orders', 'o-2');

      const table = await cli(['inspect', 'orders', 'o-1']);
      expect(table.code, table.stderr).toBe(ExitCode.OK);
      expect(table.stdout).toMatch(/^state +completed$/m);
      expect(table.stdout).toMatch(/^result +"\{\\"total\\":42\}"$/m);
      const where = h.where('orders', 'o-1');
      expect(where.key !== null || where.table !== null).toBe(true);
      if (where.key === null) expect(table.stdout).not.toMatch(/^key /m);
      else expect(table.stdout.split('\n')).toContainEqual(`key      ${where.key}`);
      if (where.table === null) expect(table.stdout).not.toMatch(/^table /m);
      else expect(table.stdout.split('\n')).toContainEqual(`table    ${where.table}`);

      const doc = json(await cli(['--json', 'inspect', 'orders', 'o-2']));
      expect(doc).toMatchObject({ found: true, scope: 'orders', id: 'o-2', ...h.where('orders', 'o-2'), record: { state: 'in-progress', token, leaseExpired: false, suspect: false } });

      const absent = await cli(['inspect', 'orders', 'nope']);
      expect(absent.code).toBe(ExitCode.NOT_FOUND);
      expect(absent.stdout).toBe('');
      expect(absent.stderr).toMatch(/no record of nope in scope orders/);
      const absentJson = await cli(['--json', 'inspect', 'orders', 'nope']);
      expect(absentJson.code).toBe(ExitCode.NOT_FOUND);
      expect(json(absentJson)).toEqual({ found: false, scope: 'orders', id: 'nope', ...h.where('orders', 'nope') });
    });
  });

  describe(`onceonly ${flag} list`, () => {
    it(`filters by --state, honours --limit, and pages with --cursor without repeats${h.ordered ? ', in ID order' : ''}`, async () => {
      const completed = Array.from({ length: 60 }, (_, i) => `done-${String(i).padStart(2, '0')}`);
      const running = Array.from({ length: 15 }, (_, i) => `run-${String(i).padStart(2, '0')}`);
      await done('big', completed);
      for (const id of running) await claimed('big', id);
      await done('big-other', ['done-01']);

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
      expect(pages).toBeGreaterThanOrEqual(4);
      expect(seen).toHaveLength(75);
      expect(new Set(seen)).toEqual(new Set([...completed, ...running]));
      if (h.ordered) {
        expect(pages).toBe(4);
        expect(seen).toEqual([...completed, ...running]); // ID order: the primary key's
      }

      const inProgress = json<ListDoc>(await cli(['--json', 'list', 'big', '--state', 'in-progress', '--limit', '1000', '--batch-size', '7']));
      expect(inProgress.cursor).toBeNull();
      expect(inProgress.entries.map((e) => e.id).sort()).toEqual([...running].sort());
      expect(inProgress.entries.every((e) => e.record.state === 'in-progress')).toBe(true);
      if (h.ordered) expect(inProgress.entries.map((e) => e.id)).toEqual(running);

      const three = await cli(['list', 'big', '--state', 'completed', '--limit', '3']);
      const lines = three.stdout.trim().split('\n');
      expect(lines[0]).toMatch(/^ID +STATE +UPDATED +EXPIRES IN +FLAGS$/);
      expect(lines.slice(1, 4).every((line) => /^done-\d+ +completed +\S+Z +\d+m\d+s +-$/.test(line))).toBe(true);
      const first = lines.slice(1, 4).map((line) => line.split(' ')[0]);
      if (h.ordered) expect(first).toEqual(['done-00', 'done-01', 'done-02']);
      expect(lines[4]).toMatch(new RegExp(`^more: --cursor ${h.cursor.source}$`));
      const next = json<ListDoc>(await cli(['--json', 'list', 'big', '--state', 'completed', '--limit', '2', '--cursor', lines[4]!.slice('more: --cursor '.length)]));
      expect(next.entries).toHaveLength(2);
      expect(next.entries.every((e) => e.record.state === 'completed' && !first.includes(e.id!))).toBe(true);
      if (h.ordered) expect(next.entries.map((e) => e.id)).toEqual(['done-03', 'done-04']);

      expect((await cli(['list', 'big', '--state', 'failed'])).stdout.trim()).toBe('(no failed records)');
      const foreign = await cli(['list', 'big', '--cursor', h.foreignCursor]);
      expect(foreign.code).toBe(ExitCode.USAGE);
      expect(foreign.stderr).toMatch(/not a cursor this store handed out/);
    });
  });

  describe(`onceonly ${flag} purge`, () => {
    it('removes one record with --yes; --dry-run and a refused purge leave it', async () => {
      const store = h.store();
      await done('orders', ['o-1', 'o-2']);
      const dry = await cli(['--json', 'purge', 'orders', 'o-1', '--dry-run']);
      expect(json(dry)).toEqual({ scope: 'orders', id: 'o-1', found: true, purged: false, dryRun: true, state: 'completed' });
      const refused = await cli(['purge', 'orders', 'o-1'], { input: 'y\n' }); // a pipe is not a terminal, whatever it says
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
      const store = h.store();
      const ids = Array.from({ length: 300 }, (_, i) => `r-${i}`);
      await done('gone', ids);
      await done('gone:kept', ['r-1']);
      await done('gon', ['r-1']);
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

  describe(`onceonly ${flag} mark`, () => {
    it('gets a mark, refuses to forget it without --yes, forgets it with --yes', async () => {
      const store = h.store();
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

  describe(`onceonly ${flag} stats`, () => {
    it('counts a scope by state; expired records are not counted', async () => {
      const store = h.store();
      await done('c', ['a', 'b', 'c', 'old']);
      const failed = await claimed('c', 'f');
      await store.fail({ scope: 'c', id: 'f', token: failed, error: 'E', windowMs: WINDOW });
      const released = await claimed('c', 'r');
      await store.release({ scope: 'c', id: 'r', token: released });
      await claimed('c', 'p');
      await h.expireLease('c', 'p'); // its lease ran out
      await h.expireRecord('c', 'old'); // its window is over
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
  });

  describe(`onceonly ${flag} with hostile IDs`, () => {
    it('round-trip: list gives them back, inspect and purge reach them with --id-json (or as arguments)', async () => {
      const store = h.store();
      const ids = [...new Set([...HOSTILE_IDS, ...ADMIN_HOSTILE_IDS, ...h.hostile.ids, ...CLI_HOSTILE_IDS])];
      const scope = "hostile:{scope}%_'\\";
      await done(scope, ids, (id) => `r:${id.length}`);

      // Every ID listed once, with the key part (and, where the store can recover it, the ID) of its own record.
      const listed = json<ListDoc>(await cli(['--json', 'list', scope, '--limit', '1000']));
      const byKeyPart = (a: { keyPart: string }, b: { keyPart: string }) => (a.keyPart < b.keyPart ? -1 : a.keyPart > b.keyPart ? 1 : 0);
      const expected = ids.map((id) => h.entryOf(id)).map(({ id, keyPart }) => ({ id: id ?? null, keyPart, hashed: id === undefined }));
      expect(listed.entries.map(({ id, keyPart, hashed }) => ({ id, keyPart, hashed })).sort(byKeyPart)).toEqual(expected.sort(byKeyPart));

      // IDs a command line cannot carry (controls, lone surrogates, what the store hashes) reach their own
      // record through --id-json, as `list --json` printed them (one process each: a sample, the listing
      // above covers every ID).
      const sample = [...new Set([...SAMPLE, ...h.hostile.sample])];
      expect(sample.every((id) => ids.includes(id))).toBe(true);
      const inspected = await pool(sample, 3, (id) => cli(['--json', 'inspect', scope, '--id-json', JSON.stringify(id)]));
      inspected.forEach((run, i) => {
        expect(run.code, `${JSON.stringify(sample[i])}: ${run.stderr}`).toBe(ExitCode.OK);
        expect(json(run), JSON.stringify(sample[i])).toMatchObject({ found: true, id: sample[i], record: { state: 'completed', result: `r:${sample[i]!.length}` } });
      });
      // Arguments a command line can carry work as they are.
      const byArgument = await pool(PLAIN, 3, (id) => cli(['--json', 'inspect', scope, '--', id]));
      byArgument.forEach((run, i) => expect(json(run), PLAIN[i]).toMatchObject({ found: true, id: PLAIN[i] }));
      // The human table escapes what a terminal must not see raw.
      const table = await cli(['list', scope, '--limit', '1000']);
      expect(table.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f]/);
      expect(table.stdout).toContain('"\\u001b[2J"');

      const doomed = [...new Set([...DOOMED, ...h.hostile.doomed])];
      expect(doomed.every((id) => ids.includes(id))).toBe(true);
      const purged = await pool(doomed, 3, (id) => cli(['--json', 'purge', scope, '--id-json', JSON.stringify(id), '--yes']));
      purged.forEach((run, i) => expect(json(run), JSON.stringify(doomed[i])).toMatchObject({ found: true, purged: true }));
      const left = json<ListDoc>(await cli(['--json', 'list', scope, '--limit', '1000']));
      expect(left.entries).toHaveLength(ids.length - doomed.length);
      for (const id of doomed) expect(await store.inspect(scope, id), JSON.stringify(id)).toBeUndefined();
      expect(await store.inspect(scope, '%_%')).toMatchObject({ state: 'completed' }); // not taken for a pattern
    });
  });

  describe(`onceonly ${flag} connecting`, () => {
    it('3 within the timeout when the server is unreachable or silent, never hanging, never showing the password', async () => {
      const refused = await runCli([flag, h.refusedUrl(await freePort()), 'stats', 'x']);
      expect(refused.code).toBe(ExitCode.STORE_UNAVAILABLE);
      expect(refused.stderr).toMatch(h.refused);
      expect(refused.stderr).not.toContain('secret');
      expect(refused.ms).toBeLessThan(5_000);

      // Accepts connections and never answers: only the timeout can end this.
      const sockets: Socket[] = [];
      const silent = createServer((socket) => sockets.push(socket));
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      try {
        const port = (silent.address() as { port: number }).port;
        const hung = await runCli([flag, h.silentUrl(port), '--timeout', '500', '--json', 'list', 'x']);
        expect(hung.code).toBe(ExitCode.STORE_UNAVAILABLE);
        expect(hung.stderr).toMatch(h.silent);
        expect(hung.stderr).not.toContain('secret');
        expect(hung.stdout).toBe('');
        expect(hung.ms).toBeLessThan(5_000);
      } finally {
        for (const socket of sockets) socket.destroy();
        silent.close();
      }
    });

    it(`reads the URL from ${h.urlEnv}`, async () => {
      await done('env', ['e-1']);
      const run = await runCli([...h.scoping(), '--json', 'inspect', 'env', 'e-1'], { env: { [h.urlEnv]: h.url() } });
      expect(json(run)).toMatchObject({ found: true, ...h.where('env', 'e-1'), record: { state: 'completed' } });
    });

    it(`5 with an install hint when the optional ${h.packages.join(' and ')} are not installed`, async () => {
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
        const run = await runCli([flag, h.url(), 'stats', 's'], {
          bin: join(modules, '@onceonly/cli/dist/bin.js'),
          nodeArgs: ['--preserve-symlinks', '--preserve-symlinks-main'],
        });
        expect(run.code, run.stderr).toBe(ExitCode.MISSING_DEPENDENCY);
        const [adapter, client] = h.packages.map(escapeRegExp);
        expect(run.stderr).toMatch(new RegExp(`cannot load (${adapter}|${client}), an optional dependency of @onceonly/cli\\. ${flag} needs both: npm install ${adapter} ${client}`));
      } finally {
        await rm(sandbox, { recursive: true, force: true });
      }
    });
  });
}
