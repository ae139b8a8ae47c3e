// Runs the built `onceonly` executable (packages/cli/dist/bin.js) as a child process, the way users
// run it. `npm test` builds it first (turbo: the test package depends on @onceonly/cli).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = join(root, 'packages/cli/dist/bin.js');

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit. */
  ms: number;
}

export interface RunOptions {
  /** Extra environment; ONCEONLY_REDIS_URL and ONCEONLY_POSTGRES_URL are removed unless given here. */
  env?: Record<string, string>;
  /** Written to stdin (a pipe, never a terminal), then closed. */
  input?: string;
  /** The child is killed after this long (the test then fails on its exit code). Default 20 s. */
  timeoutMs?: number;
  /** Extra `node` flags. */
  nodeArgs?: string[];
  /** Script to run instead of the built bin. */
  bin?: string;
}

/** Runs `onceonly <args>`; resolves when the process exits. */
export function runCli(args: readonly string[], options: RunOptions = {}): Promise<CliRun> {
  const started = performance.now();
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
  for (const name of ['ONCEONLY_REDIS_URL', 'ONCEONLY_POSTGRES_URL']) if (!options.env?.[name]) delete env[name];
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), options.bin ?? BIN, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  child.stdin.end(options.input ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: performance.now() - started });
    });
  });
}

/** An entry of `list --json`. */
export interface Listed {
  id: string | null;
  keyPart: string;
  hashed: boolean;
  record: { state: string; token: number; suspect: boolean; leaseExpired: boolean; result?: string };
}

/** The document `list --json` prints. */
export interface ListDoc {
  scope: string;
  entries: Listed[];
  cursor: string | null;
}

/** Runs `work` over `items`, `width` at a time (each CLI run is a Node process: keep the cores for others). */
export async function pool<T, R>(items: readonly T[], width: number, work: (item: T) => Promise<R>): Promise<R[]> {
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

/** The one JSON document a `--json` run printed. */
export function json<T = Record<string, unknown>>(run: CliRun): T {
  const lines = run.stdout.trim().split('\n');
  if (lines.length !== 1) throw new Error(`expected one JSON line on stdout, got ${lines.length}: ${run.stdout}\nstderr: ${run.stderr}`);
  return JSON.parse(lines[0]!) as T;
}

/**
 * Fails with a clear message when the CLI, or what it loads at run time, has not been built since the
 * admin operations exist: the child process runs `dist`, not the sources the other tests import.
 * (Staleness within `dist` is the build's business: `npm test` builds first.)
 */
export function assertBuilt(): void {
  const needed = [
    'packages/cli/dist/bin.js',
    'packages/redis/dist/admin.js',
    'packages/redis/dist/scripts/admin-read-n.lua',
    'packages/postgres/dist/admin.js',
    'packages/core/dist/store/admin.js',
  ];
  const missing = needed.filter((file) => !existsSync(join(root, file)));
  if (missing.length > 0) throw new Error(`${missing.join(', ')} missing: run \`npm run build\` first (\`npm test\` does).`);
}
