// The command runner with a fake store: confirmation prompts, refusals, progress kept off stdout,
// interrupts, missing optional packages, error → exit code mapping, and safe human output.
import { PassThrough } from 'node:stream';
import { StoreUnavailableError, type AdminPurgeScopeOptions, type AdminRecord } from '@onceonly/core';
import { describe, expect, it } from 'vitest';
import type { OpenStore } from '../src/connect.js';
import { ExitCode } from '../src/exit-codes.js';
import { display } from '../src/format.js';
import { main, type CliIo } from '../src/main.js';

const URL = 'redis://127.0.0.1:6379';

const record = (over: Partial<AdminRecord> = {}): AdminRecord => ({
  state: 'completed',
  token: 7,
  claimedAt: 1_700_000_000_000,
  updatedAt: 1_700_000_001_000,
  leaseExpired: false,
  suspect: false,
  expiresAt: 1_700_086_400_000,
  readAt: 1_700_000_002_000,
  ...over,
});

/** A store with one scope 'orders' in memory, enough for the runner. */
function fakeStore(ids: string[] = ['o-1', 'o-2']) {
  const records = new Map(ids.map((id) => [id, record()]));
  const calls: string[] = [];
  const store = {
    inspect: async (_scope: string, id: string) => records.get(id),
    list: async () => ({ entries: [...records].map(([id, r]) => ({ id, keyPart: id, record: r })), cursor: undefined }),
    purge: async (_scope: string, id: string) => {
      calls.push(`purge ${id}`);
      return records.delete(id);
    },
    purgeScope: async (_scope: string, options: AdminPurgeScopeOptions = {}) => {
      calls.push(`purgeScope dryRun=${String(options.dryRun)}`);
      let records = 0;
      for (let batch = 0; batch < 5; batch++) {
        if (options.signal?.aborted) return { records, marks: 0, dryRun: options.dryRun ?? false, aborted: true };
        records += 10;
        options.onProgress?.({ records, marks: 0 });
      }
      return { records, marks: 0, dryRun: options.dryRun ?? false, aborted: false };
    },
    countByState: async () => ({ 'in-progress': 0, completed: records.size, failed: 0, released: 0, total: records.size, leaseExpired: 0, suspect: 0, marks: 0 }),
    getMark: async () => ({ low: 0, high: 41 }),
    deleteMark: async () => {
      calls.push('deleteMark');
    },
  };
  let closed = false;
  const open: OpenStore = { store: store as unknown as OpenStore['store'], close: async () => void (closed = true) };
  return { store, records, calls, open, closed: () => closed };
}

interface Run {
  code: ExitCode;
  stdout: string;
  stderr: string;
}

/** Runs main() with in-memory streams; `answer` is typed into a terminal stdin (undefined: stdin is a pipe). */
async function run(argv: string[], options: { open?: OpenStore; answer?: string | null; stderrTty?: boolean; signal?: AbortSignal; importer?: CliIo['importer'] } = {}): Promise<Run> {
  const stdout = new PassThrough();
  const stderr = Object.assign(new PassThrough(), { isTTY: options.stderrTty ?? false });
  const stdin = Object.assign(new PassThrough(), { isTTY: options.answer !== undefined });
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  stderr.on('data', (c: Buffer) => {
    err += c.toString();
    // Answer the prompt once it is asked (null: end of input, as Ctrl-D).
    if (options.answer !== undefined && err.includes('[y/N]') && !stdin.writableEnded) {
      if (options.answer === null) stdin.end();
      else stdin.end(`${options.answer}\n`);
    }
  });
  const code = await main(argv, {
    stdout,
    stderr,
    stdin,
    env: {},
    ...(options.open ? { open: async () => options.open! } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.importer ? { importer: options.importer } : {}),
  });
  await new Promise((resolve) => setImmediate(resolve));
  return { code, stdout: out, stderr: err };
}

describe('confirmation', () => {
  it('purges after "y" on a terminal, asking on stderr', async () => {
    const fake = fakeStore();
    const result = await run(['--redis', URL, 'purge', 'orders', 'o-1'], { open: fake.open, answer: 'y' });
    expect(result.code).toBe(ExitCode.OK);
    expect(result.stderr).toMatch(/Purge the completed record of o-1 in scope orders\? \[y\/N\]/);
    expect(result.stdout).toMatch(/purged the completed record of o-1/);
    expect(fake.calls).toEqual(['purge o-1']);
    expect(fake.closed()).toBe(true);
  });

  it('refuses (exit 4) on any other answer, on end of input, and without asking when stdin is not a terminal', async () => {
    for (const answer of ['n', '', 'yep', null]) {
      const fake = fakeStore();
      const result = await run(['--redis', URL, 'purge', '--scope', 'orders'], { open: fake.open, answer });
      expect(result.code, String(answer)).toBe(ExitCode.REFUSED);
      expect(fake.calls).toEqual([]);
    }
    const fake = fakeStore();
    const piped = await run(['--redis', URL, 'mark', 'forget', '--group', 'g', '--topic', 't', '--partition', '1'], { open: fake.open });
    expect(piped.code).toBe(ExitCode.REFUSED);
    expect(piped.stderr).not.toMatch(/\[y\/N\]/);
    expect(piped.stderr).toMatch(/stdin is not a terminal\. Pass --yes/);
    expect(fake.calls).toEqual([]);
  });

  it('needs no confirmation for --yes or --dry-run', async () => {
    const fake = fakeStore();
    expect((await run(['--redis', URL, 'purge', '--scope', 'orders', '--dry-run'], { open: fake.open })).code).toBe(ExitCode.OK);
    expect((await run(['--redis', URL, 'purge', 'orders', 'o-2', '--dry-run'], { open: fake.open })).code).toBe(ExitCode.OK);
    expect(fake.calls).toEqual(['purgeScope dryRun=true']);
    expect((await run(['--redis', URL, 'mark', 'forget', '--group', 'g', '--topic', 't', '--partition', '1', '-y'], { open: fake.open })).code).toBe(ExitCode.OK);
    expect(fake.calls).toEqual(['purgeScope dryRun=true', 'deleteMark']);
  });
});

describe('output', () => {
  it('keeps progress on stderr and exactly one JSON document on stdout', async () => {
    const result = await run(['--redis', URL, '--json', 'purge', '--scope', 'orders', '--yes'], { open: fakeStore().open });
    expect(result.code).toBe(ExitCode.OK);
    expect(JSON.parse(result.stdout)).toEqual({ scope: 'orders', records: 50, marks: 0, dryRun: false, aborted: false });
    expect(result.stdout.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/^onceonly: purged 10 records so far$/m);
  });

  it('rewrites one progress line on a terminal and clears it at the end; --no-progress prints none', async () => {
    const tty = await run(['--redis', URL, 'purge', '--scope', 'orders', '--yes'], { open: fakeStore().open, stderrTty: true });
    expect(tty.stderr).toMatch(/^\r\x1b\[Kpurged 10 records so far…/);
    expect(tty.stderr.endsWith('\r\x1b[K')).toBe(true);
    const quiet = await run(['--redis', URL, 'purge', '--scope', 'orders', '--yes', '--no-progress'], { open: fakeStore().open });
    expect(quiet.stderr).toBe('');
    expect(quiet.stdout).toBe('purged 50 records of scope orders\n');
  });

  it('prints hostile IDs quoted and escaped: nothing reaches the terminal raw', async () => {
    const nasty = ['\u001b[31mred', 'a\u202eb', 'a\nb', 'tab\there', '\uD83D', 'zero\u200bwidth', 'quote"s', ' '];
    const result = await run(['--redis', URL, 'list', 'orders'], { open: fakeStore(nasty).open });
    expect(result.code).toBe(ExitCode.OK);
    expect(result.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f\u200b\u202e]/);
    for (const id of nasty) {
      expect(result.stdout).toContain(display(id));
      expect(JSON.parse(display(id))).toBe(id); // pasteable into --id-json
    }
    expect(display('order-42')).toBe('order-42');
    expect(display('日本語')).toBe('日本語');
  });
});

describe('inspect', () => {
  it('says where a record lives: its Redis key, or the PostgreSQL table of its row; the JSON has both fields', async () => {
    const redis = fakeStore();
    const withKey: OpenStore = { ...redis.open, keyOf: (scope, id) => `onceonly:{${scope}}:${id}` };
    const byKey = await run(['--redis', URL, '--json', 'inspect', 'orders', 'o-1'], { open: withKey });
    expect(JSON.parse(byKey.stdout)).toMatchObject({ found: true, key: 'onceonly:{orders}:o-1', table: null });
    expect((await run(['--redis', URL, 'inspect', 'orders', 'o-1'], { open: withKey })).stdout).toMatch(/^key +onceonly:\{orders\}:o-1$/m);

    const postgres = fakeStore();
    const withTable: OpenStore = { ...postgres.open, table: 'public.onceonly_records' };
    const pg = ['--postgres', 'postgres://127.0.0.1/app'];
    const byRow = await run([...pg, '--json', 'inspect', 'orders', 'o-1'], { open: withTable });
    expect(JSON.parse(byRow.stdout)).toMatchObject({ found: true, scope: 'orders', id: 'o-1', key: null, table: 'public.onceonly_records' });
    const absent = await run([...pg, '--json', 'inspect', 'orders', 'nope'], { open: withTable });
    expect(JSON.parse(absent.stdout)).toEqual({ found: false, scope: 'orders', id: 'nope', key: null, table: 'public.onceonly_records' });
    const human = await run([...pg, 'inspect', 'orders', 'o-1'], { open: withTable });
    expect(human.stdout).toMatch(/^table +public\.onceonly_records$/m);
    expect(human.stdout).not.toMatch(/^key /m);
  });
});

describe('exit codes', () => {
  it('1 for an absent record or mark, with a JSON answer under --json', async () => {
    const fake = fakeStore();
    const absent = await run(['--redis', URL, '--json', 'inspect', 'orders', 'nope'], { open: fake.open });
    expect(absent.code).toBe(ExitCode.NOT_FOUND);
    expect(JSON.parse(absent.stdout)).toMatchObject({ found: false, scope: 'orders', id: 'nope' });
    expect((await run(['--redis', URL, 'purge', 'orders', 'nope', '--yes'], { open: fake.open })).code).toBe(ExitCode.NOT_FOUND);
    fake.store.getMark = async () => undefined as never;
    expect((await run(['--redis', URL, 'mark', 'get', '--group', 'g', '--topic', 't', '--partition', '1'], { open: fake.open })).code).toBe(ExitCode.NOT_FOUND);
  });

  it('2 without a store, 3 when the store is unavailable, 6 for anything unexpected', async () => {
    const none = await run(['stats', 'orders']);
    expect(none.code).toBe(ExitCode.USAGE);
    expect(none.stderr).toMatch(/no store given: pass --redis <url> \(or set ONCEONLY_REDIS_URL\) or --postgres <url> \(or set ONCEONLY_POSTGRES_URL\)/);

    const fake = fakeStore();
    fake.store.countByState = async () => {
      throw new StoreUnavailableError('Redis store unavailable during countByState: connection lost');
    };
    const down = await run(['--redis', URL, 'stats', 'orders'], { open: fake.open });
    expect(down.code).toBe(ExitCode.STORE_UNAVAILABLE);
    expect(down.stderr).toMatch(/connection lost/);
    fake.store.countByState = async () => {
      throw new Error('boom');
    };
    const bug = await run(['--redis', URL, 'stats', 'orders'], { open: fake.open });
    expect(bug.code).toBe(ExitCode.INTERNAL);
    expect(bug.stderr).toMatch(/unexpected error \(please report it\).*boom/);
  });

  it('5 with an install hint when @onceonly/postgres or pg is missing', async () => {
    for (const missing of ['@onceonly/postgres', 'pg']) {
      const importer = async (specifier: string) => {
        if (specifier === missing) throw Object.assign(new Error(`Cannot find package '${missing}'`), { code: 'ERR_MODULE_NOT_FOUND' });
        return import(specifier);
      };
      const result = await run(['--postgres', 'postgres://127.0.0.1:1/x', 'stats', 'orders'], { importer });
      expect(result.code, missing).toBe(ExitCode.MISSING_DEPENDENCY);
      expect(result.stderr).toContain(`cannot load ${missing}`);
      expect(result.stderr).toContain('npm install @onceonly/postgres pg');
    }
  });

  it('5 with an install hint when @onceonly/redis or ioredis is missing', async () => {
    for (const missing of ['@onceonly/redis', 'ioredis']) {
      const importer = async (specifier: string) => {
        if (specifier === missing) throw Object.assign(new Error(`Cannot find package '${missing}'`), { code: 'ERR_MODULE_NOT_FOUND' });
        return import(specifier);
      };
      const result = await run(['--redis', URL, 'stats', 'orders'], { importer });
      expect(result.code, missing).toBe(ExitCode.MISSING_DEPENDENCY);
      expect(result.stderr).toContain(`cannot load ${missing}`);
      expect(result.stderr).toContain('npm install @onceonly/redis ioredis');
    }
  });

  it('130 when interrupted: a purge stops after its batch and reports, anything else stops at once', async () => {
    const controller = new AbortController();
    const fake = fakeStore();
    const purgeScope = fake.store.purgeScope;
    fake.store.purgeScope = (scope, options = {}) =>
      purgeScope(scope, { ...options, onProgress: (p) => (options.onProgress?.(p), p.records === 20 && controller.abort()) });
    const purge = await run(['--redis', URL, '--json', 'purge', '--scope', 'orders', '--yes'], { open: fake.open, signal: controller.signal });
    expect(purge.code).toBe(ExitCode.INTERRUPTED);
    expect(JSON.parse(purge.stdout)).toMatchObject({ records: 20, aborted: true });

    const stuck = fakeStore();
    stuck.store.countByState = () => new Promise(() => {});
    const late = new AbortController();
    setTimeout(() => late.abort(), 20);
    const stats = await run(['--redis', URL, 'stats', 'orders'], { open: stuck.open, signal: late.signal });
    expect(stats.code).toBe(ExitCode.INTERRUPTED);
    expect(stuck.closed()).toBe(true);
  });
});
