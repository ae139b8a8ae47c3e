// Argument parsing, pure: commander splits the command line, zod validates what each command gets.
import { describe, expect, it } from 'vitest';
import { parseArgs, type Invocation } from '../src/args.js';
import { CliError, ExitCode } from '../src/exit-codes.js';

const URL = 'redis://127.0.0.1:6379';

function parse(argv: string[], env: Record<string, string | undefined> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const output = { out: (s: string) => out.push(s), err: (s: string) => err.push(s) };
  try {
    return { parsed: parseArgs(argv, env, output), out: out.join(''), err: err.join('') };
  } catch (error) {
    return { error: error as CliError, out: out.join(''), err: err.join('') };
  }
}

function invocation(argv: string[], env?: Record<string, string | undefined>): Invocation {
  const { parsed, error } = parse(argv, env);
  if (error) throw error;
  if (parsed?.kind !== 'run') throw new Error(`expected a command, got ${JSON.stringify(parsed)}`);
  return parsed.invocation;
}

/** The usage error for `argv`: exit code 2 and a message. */
function usage(argv: string[], env?: Record<string, string | undefined>): string {
  const { error, err } = parse(argv, env);
  expect(error).toBeInstanceOf(CliError);
  expect(error!.exitCode).toBe(ExitCode.USAGE);
  return `${error!.message}\n${err}`;
}

describe('parseArgs', () => {
  it('parses every command with its defaults', () => {
    expect(invocation(['--redis', URL, 'inspect', 'orders', 'o-1'])).toEqual({
      command: 'inspect',
      global: { redis: URL, cluster: false, json: false, timeoutMs: 5000 },
      args: { scope: 'orders', id: 'o-1' },
    });
    expect(invocation(['--redis', URL, 'list', 'orders']).args).toEqual({ scope: 'orders', limit: 100, batchSize: 500 });
    expect(invocation(['--redis', URL, 'list', 'orders', '--state', 'failed', '--limit', '7', '--cursor', '12:ab', '--batch-size', '50']).args).toEqual({
      scope: 'orders',
      state: 'failed',
      limit: 7,
      cursor: '12:ab',
      batchSize: 50,
    });
    expect(invocation(['--redis', URL, 'purge', 'orders', 'o-1'])).toMatchObject({ command: 'purge', args: { scope: 'orders', id: 'o-1', dryRun: false, yes: false } });
    expect(invocation(['--redis', URL, 'purge', '--scope', 'orders', '--dry-run', '-y', '--batch-size', '9', '--include-marks', '--no-progress'])).toMatchObject({
      command: 'purgeScope',
      args: { scope: 'orders', dryRun: true, yes: true, batchSize: 9, includeMarks: true, progress: false },
    });
    expect(invocation(['--redis', URL, 'purge', '--scope', 'orders']).args).toMatchObject({ progress: true, includeMarks: false, batchSize: 500 });
    expect(invocation(['--redis', URL, 'mark', 'get', '--group', 'g', '--topic', 't.x', '--partition', '0'])).toMatchObject({
      command: 'markGet',
      args: { group: 'g', topic: 't.x', partition: 0 },
    });
    expect(invocation(['--redis', URL, 'mark', 'forget', '--group', 'g', '--topic', 't', '--partition', '12', '--yes'])).toMatchObject({
      command: 'markForget',
      args: { partition: 12, yes: true, dryRun: false },
    });
    expect(invocation(['--redis', URL, 'stats', 'orders'])).toMatchObject({ command: 'stats', args: { scope: 'orders', batchSize: 500 } });
  });

  it('takes global options before or after the command, and the URL from the environment', () => {
    const after = invocation(['stats', 'orders', '--json', '--redis', URL, '--prefix', 'app', '--timeout', '250', '--cluster']);
    expect(after.global).toEqual({ redis: URL, cluster: true, prefix: 'app', json: true, timeoutMs: 250 });
    expect(invocation(['stats', 'orders'], { ONCEONLY_REDIS_URL: 'rediss://u:p@127.0.0.1:6380' }).global.redis).toBe('rediss://u:p@127.0.0.1:6380');
    expect(invocation(['--redis', URL, 'stats', 'orders'], { ONCEONLY_REDIS_URL: 'redis://127.0.0.2' }).global.redis).toBe(URL);
    // No store at all is the runner's to refuse (a usage error there): the parser leaves it open.
    expect(invocation(['stats', 'orders']).global.redis).toBeUndefined();
  });

  it('takes --postgres with its table options, or the URL from ONCEONLY_POSTGRES_URL', () => {
    const PG = 'postgres://app:secret@127.0.0.1:5432/app?sslmode=disable';
    const parsed = invocation(['--postgres', PG, '--pg-schema', 'jobs', '--pg-table', 'dedup', '--pg-marks-table', 'dedup_marks', 'stats', 'orders']);
    expect(parsed.global).toEqual({ postgres: PG, pgSchema: 'jobs', pgTable: 'dedup', pgMarksTable: 'dedup_marks', cluster: false, json: false, timeoutMs: 5000 });
    expect(invocation(['stats', 'orders'], { ONCEONLY_POSTGRES_URL: PG }).global).toMatchObject({ postgres: PG });
    expect(invocation(['stats', 'orders'], { ONCEONLY_POSTGRES_URL: PG }).global.redis).toBeUndefined();
    expect(invocation(['--postgres', 'postgresql://127.0.0.1/app', 'stats', 'orders']).global.postgres).toBe('postgresql://127.0.0.1/app');
    // A store option on the command line wins over the other store's environment variable.
    const chosen = invocation(['--postgres', PG, 'stats', 'orders'], { ONCEONLY_REDIS_URL: URL });
    expect(chosen.global).toMatchObject({ postgres: PG });
    expect(chosen.global.redis).toBeUndefined();
    const redis = invocation(['--redis', URL, 'stats', 'orders'], { ONCEONLY_POSTGRES_URL: PG });
    expect(redis.global).toMatchObject({ redis: URL });
    expect(redis.global.postgres).toBeUndefined();
  });

  it('refuses two stores, and options of the store not chosen, with exit code 2', () => {
    const PG = 'postgres://127.0.0.1:5432/app';
    expect(usage(['--redis', URL, '--postgres', PG, 'stats', 'orders'])).toMatch(/^--redis and --postgres are mutually exclusive: give one store/);
    expect(usage(['stats', 'orders'], { ONCEONLY_REDIS_URL: URL, ONCEONLY_POSTGRES_URL: PG })).toMatch(
      /^ONCEONLY_REDIS_URL and ONCEONLY_POSTGRES_URL are both set: pass --redis <url> or --postgres <url>/,
    );
    expect(usage(['--postgres', PG, '--prefix', 'app', 'stats', 'orders'])).toMatch(/^--prefix goes with --redis/);
    expect(usage(['--postgres', PG, '--cluster', 'stats', 'orders'])).toMatch(/^--cluster goes with --redis, not with --postgres/);
    expect(usage(['--redis', URL, '--pg-schema', 'app', 'stats', 'orders'])).toMatch(/^--pg-schema goes with --postgres/);
    expect(usage(['--pg-table', 't', 'stats', 'orders'], { ONCEONLY_REDIS_URL: URL })).toMatch(/^--pg-table goes with --postgres/);
    expect(usage(['--postgres', 'mysql://127.0.0.1/app', 'stats', 'orders'])).toMatch(/^--postgres must be a postgres:\/\/ or postgresql:\/\/ URL/);
    expect(usage(['--postgres', PG, '--pg-schema', '', 'stats', 'orders'])).toMatch(/^--pg-schema must not be empty/);
  });

  it('carries any ID: after --, or as JSON for what a command line cannot hold', () => {
    expect(invocation(['--redis', URL, 'inspect', 'orders', '--', '-starts-with-dash']).args).toEqual({ scope: 'orders', id: '-starts-with-dash' });
    expect(invocation(['--redis', URL, 'inspect', 'orders', 'a b:{c}*']).args).toEqual({ scope: 'orders', id: 'a b:{c}*' });
    expect(invocation(['--redis', URL, 'inspect', 'orders', '--id-json', '"a\\u0000b\\ud83d"']).args).toEqual({ scope: 'orders', id: 'a\u0000b\uD83D' });
    expect(invocation(['--redis', URL, 'purge', 'orders', '--id-json', '"\\n"', '--yes']).args).toMatchObject({ id: '\n', yes: true });
  });

  it('answers help and version with exit code 0 and prints them', () => {
    const help = parse(['--help']);
    expect(help.parsed).toEqual({ kind: 'exit', code: ExitCode.OK });
    expect(help.out).toMatch(/Usage: onceonly/);
    expect(help.out).toMatch(/Exit codes: 0 ok, 1 not found, 2 usage error, 3 store unavailable, 4 refused/);
    const sub = parse(['purge', '--help']);
    expect(sub.out).toMatch(/--dry-run/);
    expect(sub.out).toMatch(/--include-marks/);
    const version = parse(['--version']);
    expect(version.parsed).toEqual({ kind: 'exit', code: ExitCode.OK });
    expect(version.out.trim()).toBe('0.1.0');
  });

  it('rejects bad command lines with exit code 2 and a message naming the problem', () => {
    expect(usage([])).toMatch(/Usage: onceonly \[options\] \[command\]/);
    expect(usage(['frobnicate'])).toMatch(/unknown command 'frobnicate'/);
    expect(usage(['inspect'])).toMatch(/missing required argument 'scope'/);
    expect(usage(['--redis', URL, 'inspect', 'orders'])).toMatch(/^<id> is missing/);
    expect(usage(['--redis', URL, 'list', 'orders', '--limit', 'ten'])).toMatch(/--limit must be a whole number/);
    expect(usage(['--redis', URL, 'list', 'orders', '--limit', '0'])).toMatch(/--limit must be at least 1/);
    expect(usage(['--redis', URL, 'list', 'orders', '--limit', '10001'])).toMatch(/--limit must be at most 10000/);
    expect(usage(['--redis', URL, 'list', 'orders', '--state', 'done'])).toMatch(/Allowed choices are in-progress, completed, failed, released/);
    expect(usage(['--redis', URL, 'list', 'orders', '--bogus'])).toMatch(/unknown option '--bogus'/);
    expect(usage(['--redis', 'http://127.0.0.1', 'stats', 'orders'])).toMatch(/--redis must be a redis:\/\/ or rediss:\/\/ URL/);
    expect(usage(['--redis', URL, '--timeout', '5', 'stats', 'orders'])).toMatch(/--timeout must be at least 100/);
    expect(usage(['--redis', URL, 'stats', ''])).toMatch(/<scope> must not be empty/);
    expect(usage(['--redis', URL, 'purge', 'orders'])).toMatch(/purge needs <scope> <id>, or --scope <scope>/);
    expect(usage(['--redis', URL, 'purge'])).toMatch(/purge needs <scope> <id>/);
    expect(usage(['--redis', URL, 'purge', 'orders', 'x', '--scope', 'orders'])).toMatch(/takes no <scope> <id>/);
    expect(usage(['--redis', URL, 'purge', 'orders', 'x', '--include-marks'])).toMatch(/--include-marks goes with purge --scope/);
    expect(usage(['--redis', URL, 'inspect', 'orders', 'x', '--id-json', '"y"'])).toMatch(/either as <id> or with --id-json/);
    expect(usage(['--redis', URL, 'inspect', 'orders', '--id-json', '42'])).toMatch(/--id-json must be a JSON string/);
    expect(usage(['--redis', URL, 'inspect', 'orders', '--id-json', '"'])).toMatch(/--id-json must be a JSON string/);
    expect(usage(['--redis', URL, 'mark', 'get', '--group', 'g', '--topic', 't'])).toMatch(/required option '--partition <n>' not specified/);
    expect(usage(['--redis', URL, 'mark', 'get', '--group', 'g', '--topic', 't', '--partition', '-1'])).toMatch(/--partition must be a whole number/);
    expect(usage(['--redis', URL, 'mark'])).toMatch(/Usage: onceonly mark/);
  });
});
