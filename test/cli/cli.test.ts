// The built `onceonly` executable against a real Redis: every command, --json output, confirmation
// and refusal, progress on stderr, hostile IDs round-tripping, exit codes (not found, usage, store
// unreachable within the timeout, refused, missing optional dependency).
import { mkdtemp, mkdir, rm, symlink } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ExitCode } from '@onceonly/cli';
import { encodeKeyPart, HASHED_MARKER, RedisStore } from '@onceonly/redis';
import { Cluster, type Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { hostile } from '../../packages/redis/test/hostile-ids.js';
import { HOSTILE_IDS } from '../conformance/store-conformance.js';
import { findRedisServerBinary, freePort, startRedisCluster, type LocalRedisCluster } from '../support/redis-server.js';
import { connectSharedRedis, deleteUnder, expireLease, randomPrefix } from '../redis/redis-test-context.js';
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

let client: Redis;
let prefix: string;
let store: RedisStore;
const url = inject('redisUrl');

beforeAll(async () => {
  assertBuilt();
  client = await connectSharedRedis();
});
afterAll(() => client?.disconnect());
beforeEach(() => {
  prefix = randomPrefix();
  store = new RedisStore({ client, prefix });
});
afterEach(async () => {
  await deleteUnder(client, prefix);
});

/** `onceonly --redis <shared> --prefix <this test's> ...args`. */
const cli = (args: readonly string[], options?: RunOptions): Promise<CliRun> => runCli(['--redis', url, '--prefix', prefix, ...args], options);

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
    claims.map((c, i) => ({
      scope,
      id: ids[i]!,
      token: c.status === 'acquired' ? c.token : -1,
      windowMs: WINDOW,
      ...(result ? { result: result(ids[i]!) } : {}),
    })),
  );
  expect(new Set(done)).toEqual(new Set(['ok']));
}

async function claim(scope: string, id: string): Promise<number> {
  const result = await store.claim({ scope, id, leaseMs: LEASE, windowMs: WINDOW });
  if (result.status !== 'acquired') throw new Error(`expected acquired, got ${result.status}`);
  return result.token;
}

describe('onceonly inspect', () => {
  it('prints a record as a table and as JSON, and exits 1 for an absent one', async () => {
    await complete('orders', ['o-1'], () => '{"total":42}');
    const token = await claim('orders', 'o-2');

    const table = await cli(['inspect', 'orders', 'o-1']);
    expect(table.code, table.stderr).toBe(ExitCode.OK);
    expect(table.stdout).toMatch(/^state +completed$/m);
    expect(table.stdout).toMatch(/^result +"\{\\"total\\":42\}"$/m);
    expect(table.stdout.split('\n')).toContainEqual(`key      ${store.keyOf('orders', 'o-1')}`);

    const doc = json(await cli(['--json', 'inspect', 'orders', 'o-2']));
    expect(doc).toMatchObject({ found: true, scope: 'orders', id: 'o-2', key: store.keyOf('orders', 'o-2'), record: { state: 'in-progress', token, leaseExpired: false, suspect: false } });

    const absent = await cli(['inspect', 'orders', 'nope']);
    expect(absent.code).toBe(ExitCode.NOT_FOUND);
    expect(absent.stdout).toBe('');
    expect(absent.stderr).toMatch(/no record of nope in scope orders/);
    const absentJson = await cli(['--json', 'inspect', 'orders', 'nope']);
    expect(absentJson.code).toBe(ExitCode.NOT_FOUND);
    expect(json(absentJson)).toMatchObject({ found: false, scope: 'orders', id: 'nope' });
  });
});

describe('onceonly list', () => {
  it('filters by --state, honours --limit, and pages with --cursor over many SCAN steps without repeats', async () => {
    const done = Array.from({ length: 60 }, (_, i) => `done-${i}`);
    const running = Array.from({ length: 15 }, (_, i) => `run-${i}`);
    await complete('big', done);
    for (const id of running) await claim('big', id);
    await complete('big-other', ['done-1']);

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const run = await cli(['--json', 'list', 'big', '--limit', '20', '--batch-size', '5', ...(cursor ? ['--cursor', cursor] : [])]);
      expect(run.code, run.stderr).toBe(ExitCode.OK);
      const page = json<ListDoc>(run);
      expect(page.entries.length).toBeLessThanOrEqual(20);
      seen.push(...page.entries.map((e) => e.id!));
      cursor = page.cursor;
      pages++;
    } while (cursor !== null);
    expect(pages).toBeGreaterThanOrEqual(4);
    expect(seen).toHaveLength(75);
    expect(new Set(seen)).toEqual(new Set([...done, ...running]));

    const inProgress = json<ListDoc>(await cli(['--json', 'list', 'big', '--state', 'in-progress', '--limit', '1000', '--batch-size', '7']));
    expect(inProgress.cursor).toBeNull();
    expect(inProgress.entries.map((e) => e.id).sort()).toEqual([...running].sort());
    expect(inProgress.entries.every((e) => e.record.state === 'in-progress')).toBe(true);

    const three = await cli(['list', 'big', '--state', 'completed', '--limit', '3']);
    const lines = three.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ID +STATE +UPDATED +EXPIRES IN +FLAGS$/);
    expect(lines.slice(1, 4).every((line) => /^done-\d+ +completed +\S+Z +\d+m\d+s +-$/.test(line))).toBe(true);
    expect(lines[4]).toMatch(/^more: --cursor \S+$/);

    const none = await cli(['list', 'big', '--state', 'failed']);
    expect(none.stdout.trim()).toBe('(no failed records)');
  });
});

describe('onceonly purge', () => {
  it('removes one record with --yes; --dry-run and a refused purge leave it', async () => {
    await complete('orders', ['o-1', 'o-2']);
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
    const ids = Array.from({ length: 300 }, (_, i) => `r-${i}`);
    await complete('gone', ids);
    await complete('gone:kept', ['r-1']);
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
    expect(await store.getMark({ scope: 'gone', name: 'orders:0' })).toEqual({ low: 0, high: 9 });

    const marks = await cli(['purge', '--scope', 'gone', '--yes', '--include-marks']);
    expect(marks.stdout.trim()).toBe('purged 0 records and 1 offset mark of scope gone');
    expect(await store.getMark({ scope: 'gone', name: 'orders:0' })).toBeUndefined();
  });
});

describe('onceonly mark', () => {
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

describe('onceonly stats', () => {
  it('counts a scope by state', async () => {
    await complete('c', ['a', 'b', 'c']);
    const failed = await claim('c', 'f');
    await store.fail({ scope: 'c', id: 'f', token: failed, error: 'E', windowMs: WINDOW });
    const released = await claim('c', 'r');
    await store.release({ scope: 'c', id: 'r', token: released });
    await claim('c', 'p');
    await expireLease(client, store.keyOf('c', 'p')); // its lease ran out
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

describe('hostile IDs', () => {
  it('round-trip: list gives them back, inspect and purge reach them with --id-json (or as arguments)', async () => {
    const ids = [...new Set([...HOSTILE_IDS, ...hostile, '-starts-with-dash', '\u001b[2J'])];
    const scope = 'hostile:{scope}';
    await complete(scope, ids, (id) => `r:${id.length}`);

    const listed = json<ListDoc>(await cli(['--json', 'list', scope, '--limit', '1000']));
    const hashed = ids.filter((id) => encodeKeyPart(id).startsWith(HASHED_MARKER));
    expect(new Set(listed.entries.filter((e) => !e.hashed).map((e) => e.id))).toEqual(new Set(ids.filter((id) => !hashed.includes(id))));
    expect(new Set(listed.entries.filter((e) => e.hashed).map((e) => e.keyPart))).toEqual(new Set(hashed.map(encodeKeyPart)));
    expect(listed.entries.every((e) => (e.id === null) === e.hashed)).toBe(true);

    // IDs a command line cannot carry (NUL, lone surrogates), escapes, the hashed marker, and hashed
    // ones reach their own record through --id-json, as `list --json` printed them (one process each:
    // a sample, the listing above covers every ID).
    const sample = ['\u0000', '\uD83D', '\uDE00', '\uD83Dx', 'a\r\nb', '%41', '%2', '#a', HASHED_MARKER + 'A'.repeat(43), "!'()*", 'x'.repeat(256), 'é'.repeat(128), 'a'.repeat(10_000), '\u001b[2J'];
    expect(sample.every((id) => ids.includes(id))).toBe(true);
    const inspected = await pool(sample, 3, (id) => cli(['--json', 'inspect', scope, '--id-json', JSON.stringify(id)]));
    inspected.forEach((run, i) => {
      expect(run.code, `${JSON.stringify(sample[i])}: ${run.stderr}`).toBe(ExitCode.OK);
      expect(json(run), JSON.stringify(sample[i])).toMatchObject({ found: true, id: sample[i], record: { state: 'completed', result: `r:${sample[i]!.length}` } });
    });
    // Arguments a command line can carry work as they are.
    const plain = ['a:b', '{a}', '?[]^\\', ' ', 'u\u0308', '-starts-with-dash'];
    const byArgument = await pool(plain, 3, (id) => cli(['--json', 'inspect', scope, '--', id]));
    byArgument.forEach((run, i) => expect(json(run), plain[i]).toMatchObject({ found: true, id: plain[i] }));
    // The human table escapes what a terminal must not see raw.
    const table = await cli(['list', scope, '--limit', '1000']);
    expect(table.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f]/);
    expect(table.stdout).toContain('"\\u001b[2J"');

    const doomed = ['\u0000', '\uD83D', 'a\nb', 'x'.repeat(256), '-starts-with-dash'];
    const purged = await pool(doomed, 3, (id) => cli(['--json', 'purge', scope, '--id-json', JSON.stringify(id), '--yes']));
    purged.forEach((run, i) => expect(json(run), JSON.stringify(doomed[i])).toMatchObject({ found: true, purged: true }));
    const left = json<ListDoc>(await cli(['--json', 'list', scope, '--limit', '1000']));
    expect(left.entries).toHaveLength(ids.length - doomed.length);
    for (const id of doomed) expect(await store.inspect(scope, id), JSON.stringify(id)).toBeUndefined();
  });
});

describe('exit codes without a healthy store', () => {
  it('3 within the timeout when Redis is unreachable or silent, never hanging', async () => {
    const refused = await runCli(['--redis', `redis://127.0.0.1:${await freePort()}`, 'stats', 'x']);
    expect(refused.code).toBe(ExitCode.STORE_UNAVAILABLE);
    expect(refused.stderr).toMatch(/cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+.*ECONNREFUSED/);
    expect(refused.ms).toBeLessThan(5_000);

    // Accepts connections and never answers: only the deadline can end this.
    const sockets: Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const port = (silent.address() as { port: number }).port;
      const hung = await runCli(['--redis', `redis://:secret@127.0.0.1:${port}`, '--timeout', '500', '--json', 'list', 'x']);
      expect(hung.code).toBe(ExitCode.STORE_UNAVAILABLE);
      expect(hung.stderr).toMatch(/no answer within 500 ms/);
      expect(hung.stderr).not.toContain('secret');
      expect(hung.stdout).toBe('');
      expect(hung.ms).toBeLessThan(5_000);
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });

  it('2 for usage errors, before connecting anywhere', async () => {
    const cases: [string[], RegExp][] = [
      [['frobnicate'], /unknown command 'frobnicate'/],
      [['--redis', url, 'list'], /missing required argument 'scope'/],
      [['--redis', url, 'list', 's', '--limit', 'x'], /--limit must be a whole number/],
      [['--redis', url, 'list', 's', '--state', 'done'], /Allowed choices/],
      [['--redis', url, 'purge', 's'], /purge needs <scope> <id>/],
      [['stats', 's'], /no store given: pass --redis <url>/],
      [['--redis', 'http://127.0.0.1:1', 'stats', 's'], /--redis must be a redis:\/\/ or rediss:\/\/ URL/],
      [['--redis', url, '--prefix', 'a{b', 'stats', 's'], /prefix/],
    ];
    const runs = await pool(cases, 4, ([args]) => runCli(args));
    runs.forEach((run, i) => {
      expect(run.code, cases[i]![0].join(' ')).toBe(ExitCode.USAGE);
      expect(run.stderr).toMatch(cases[i]![1]);
      expect(run.stdout).toBe('');
    });
    const help = await runCli(['--help']);
    expect(help.code).toBe(ExitCode.OK);
    expect(help.stdout).toMatch(/Usage: onceonly/);
  });

  it('reads the URL from ONCEONLY_REDIS_URL', async () => {
    await complete('env', ['e-1']);
    const run = await runCli(['--prefix', prefix, '--json', 'inspect', 'env', 'e-1'], { env: { ONCEONLY_REDIS_URL: url } });
    expect(json(run)).toMatchObject({ found: true, record: { state: 'completed' } });
  });

  it('5 with an install hint when the optional @onceonly/redis and ioredis are not installed', async () => {
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
      const run = await runCli(['--redis', url, 'stats', 's'], {
        bin: join(modules, '@onceonly/cli/dist/bin.js'),
        nodeArgs: ['--preserve-symlinks', '--preserve-symlinks-main'],
      });
      expect(run.code, run.stderr).toBe(ExitCode.MISSING_DEPENDENCY);
      expect(run.stderr).toMatch(/cannot load (@onceonly\/redis|ioredis), an optional dependency of @onceonly\/cli\. --redis needs both: npm install @onceonly\/redis ioredis/);
    } finally {
      await rm(sandbox, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!findRedisServerBinary())('onceonly --cluster', () => {
  let cluster: LocalRedisCluster;
  let clusterClient: Cluster;

  beforeAll(async () => {
    cluster = await startRedisCluster(3);
    clusterClient = new Cluster(cluster.nodes, { redisOptions: { maxRetriesPerRequest: 1 }, lazyConnect: true });
    clusterClient.on('error', () => {});
    await clusterClient.connect();
  });
  afterAll(async () => {
    clusterClient?.disconnect();
    await cluster?.stop();
  });

  it('lists, counts and purges scopes that live on different masters, from any one node URL', async () => {
    const clusterPrefix = randomPrefix();
    const clusterStore = new RedisStore({ client: clusterClient, prefix: clusterPrefix });
    const scopes = Array.from({ length: 6 }, (_, i) => `scope-${i}`);
    for (const scope of scopes) {
      const ids = Array.from({ length: 12 }, (_, i) => `${scope}/${i}`);
      const claims = await clusterStore.claimMany(ids.map((id) => ({ scope, id, leaseMs: LEASE, windowMs: WINDOW })));
      await clusterStore.completeMany(claims.map((c, i) => ({ scope, id: ids[i]!, token: c.status === 'acquired' ? c.token : -1, windowMs: WINDOW })));
    }
    const sizes = await Promise.all(clusterClient.nodes('master').map((node) => node.dbsize()));
    expect(sizes.filter((n) => n > 0).length).toBeGreaterThan(1);

    const node = `redis://${cluster.nodes[0]!.host}:${cluster.nodes[0]!.port}`;
    const on = (args: string[]) => runCli(['--redis', node, '--cluster', '--prefix', clusterPrefix, '--json', ...args]);
    const runs = await pool(scopes, 3, (scope) => on(['stats', scope]));
    runs.forEach((run, i) => expect(json(run), run.stderr).toMatchObject({ scope: scopes[i], counts: { completed: 12, total: 12 } }));
    const listed = json<ListDoc>(await on(['list', 'scope-4', '--limit', '5', '--batch-size', '3']));
    expect(listed.entries).toHaveLength(5);
    expect(listed.cursor).not.toBeNull();
    expect(json(await on(['inspect', 'scope-2', 'scope-2/7']))).toMatchObject({ found: true, record: { state: 'completed' } });
    expect(json(await on(['purge', '--scope', 'scope-3', '--yes']))).toMatchObject({ records: 12 });
    expect((await clusterStore.countByState('scope-3')).total).toBe(0);
    expect((await clusterStore.countByState('scope-5')).total).toBe(12);
  });
});
