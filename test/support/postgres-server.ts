// A real PostgreSQL for integration tests, from the cheapest source available:
//   1. DATABASE_URL, when set (a server someone else runs; tests isolate themselves in fresh schemas);
//   2. the PostgreSQL server binaries (`initdb` and `postgres` on PATH, under /usr/lib/postgresql/*/bin
//      (Debian, Ubuntu) or a Homebrew prefix): a throwaway cluster in a temp dir, listening on a free
//      loopback port only, without fsync (and full_page_writes) for speed;
//   3. testcontainers (`postgres:16-alpine`), where a Docker engine answers;
//   else an error that says how to provide one.
// `initdb` and `postgres` refuse to run as root: as root (CI), both run as the `postgres` user (which
// Debian's package creates; else `nobody`) in a directory that user owns. Anyone else runs them as
// themselves. startPostgresServer() always starts a separate throwaway server (binary or container),
// for tests that stop or restart it.
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import pg from 'pg';
import { executable, freePort, watchdogPid, watchdogScript } from './processes.js';

export interface RunningPostgres {
  /** `postgres://user@host:port/database`. */
  url: string;
  /** Where it came from: 'env:DATABASE_URL' | 'postgres' (local binaries) | 'testcontainers'. */
  source: string;
  /** Stops the server (a no-op for DATABASE_URL). Safe to call twice. */
  stop(): Promise<void>;
}

export interface LocalPostgres extends RunningPostgres {
  host: string;
  port: number;
  /** Stops the server abruptly (immediate shutdown: every connection drops), keeping its data. */
  kill(): Promise<void>;
  /** Starts it again after `kill()`, on the same port with the same data. Local binaries only. */
  restart(): Promise<void>;
}

export interface StartPostgresOptions {
  /** How long to wait for the server to answer a query. Default 30 s. */
  readyTimeoutMs?: number;
  /** Extra server settings (`-c name=value`, local binaries only), e.g. `{ max_connections: '50' }`. */
  settings?: Record<string, string>;
}

const NO_POSTGRES_HELP =
  'No PostgreSQL available for the integration tests. Provide one of: DATABASE_URL=postgres://user@host:port/db, ' +
  'the PostgreSQL server binaries (e.g. `apt-get install postgresql` or `brew install postgresql@16`), ' +
  'or a running Docker engine (testcontainers starts postgres:16-alpine).';

// Settings of a throwaway cluster: loopback only, and no fsync (only an operating-system crash could
// lose data). Commits still write their WAL before they answer (synchronous_commit stays on, at the
// cost of a write() per commit), so a killed and restarted server keeps every committed row, as a
// real one does.
const DEFAULT_SETTINGS: Record<string, string> = {
  listen_addresses: '127.0.0.1',
  fsync: 'off',
  full_page_writes: 'off',
  max_connections: '200',
  shared_buffers: '64MB',
  log_min_messages: 'warning',
};

/** The PostgreSQL the test run shares: DATABASE_URL, else a local throwaway cluster, else a container. */
export async function resolvePostgres(): Promise<RunningPostgres> {
  const url = process.env['DATABASE_URL'];
  if (url) return { url, source: 'env:DATABASE_URL', stop: async () => {} };
  return startPostgresServer();
}

/** Starts a separate throwaway PostgreSQL: local binaries, else a container; throws when neither works. */
export async function startPostgresServer(options: StartPostgresOptions = {}): Promise<LocalPostgres> {
  const bin = findPostgresBinDir();
  if (bin) return startLocalPostgres(bin, options);
  if (options.settings) throw new Error(`${NO_POSTGRES_HELP} (server settings need the local binaries)`);
  const container = await startContainer().catch((error: unknown) => {
    throw new Error(NO_POSTGRES_HELP, { cause: error });
  });
  if (container) return container;
  throw new Error(NO_POSTGRES_HELP);
}

/** The directory holding `initdb` and `postgres`, or undefined. The newest version wins. */
export function findPostgresBinDir(): string | undefined {
  const versioned = (root: string, pattern: RegExp, suffix: string[]): string[] => {
    try {
      return readdirSync(root)
        .filter((name) => pattern.test(name))
        .sort((a, b) => Number(/\d+/.exec(b)?.[0] ?? 0) - Number(/\d+/.exec(a)?.[0] ?? 0))
        .map((name) => join(root, name, ...suffix));
    } catch {
      return [];
    }
  };
  const dirs = [
    ...(process.env['PATH'] ?? '').split(delimiter),
    ...versioned('/usr/lib/postgresql', /^\d+$/, ['bin']),
    ...versioned('/opt/homebrew/opt', /^postgresql(@\d+)?$/, ['bin']),
    ...versioned('/usr/local/opt', /^postgresql(@\d+)?$/, ['bin']),
  ];
  return dirs.find((dir) => dir && executable(join(dir, 'initdb')) && executable(join(dir, 'postgres')));
}

/** As root: the unprivileged account the server runs as (uid, gid). Otherwise undefined (run as ourselves). */
function serverAccount(): { uid: number; gid: number; name: string } | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const passwd = readFileSync('/etc/passwd', 'utf8').split('\n');
  for (const name of ['postgres', 'nobody']) {
    const fields = passwd.find((line) => line.startsWith(`${name}:`))?.split(':');
    if (fields && fields.length > 3) return { name, uid: Number(fields[2]), gid: Number(fields[3]) };
  }
  throw new Error('running as root, and there is no `postgres` or `nobody` user to run PostgreSQL as (initdb refuses root)');
}

async function startLocalPostgres(bin: string, options: StartPostgresOptions): Promise<LocalPostgres> {
  const account = serverAccount();
  const dir = await mkdtemp(join(tmpdir(), 'onceonly-postgres-'));
  if (account) await chown(dir, account.uid, account.gid);
  const dataDir = join(dir, 'data');
  const ids = account ? { uid: account.uid, gid: account.gid } : {};
  try {
    execFileSync(join(bin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'], {
      ...ids,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    });
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`initdb failed${account ? ` (as ${account.name})` : ''}: ${stderr || (error as Error).message}`, { cause: error });
  }

  const settings = { ...DEFAULT_SETTINGS, unix_socket_directories: dir, ...options.settings };
  const args = ['-D', dataDir, ...Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`])];
  let server: { port: number; process: ServerProcess } | undefined;
  // A port from freePort() can be taken before the server binds it: try a few.
  const launch = async (port?: number): Promise<{ port: number; process: ServerProcess }> => {
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const candidate = port ?? (await freePort());
      try {
        return { port: candidate, process: await startServerProcess(bin, [...args, '-p', String(candidate)], ids, candidate, options.readyTimeoutMs ?? 30_000) };
      } catch (error) {
        lastError = error;
        if (port !== undefined) break;
      }
    }
    throw lastError;
  };
  try {
    server = await launch();
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  const port = server.port;
  let stopped: Promise<void> | undefined;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    source: 'postgres',
    host: '127.0.0.1',
    port,
    stop: () =>
      (stopped ??= (async () => {
        await server?.process.stop('SIGINT');
        await rm(dir, { recursive: true, force: true });
      })()),
    kill: async () => {
      await server?.process.stop('SIGQUIT');
    },
    restart: async () => {
      if (stopped) throw new Error('the server was stopped; start a new one');
      await server?.process.stop('SIGQUIT');
      server = await launch(port);
    },
  };
}

interface ServerProcess {
  /** Stops the server with `signal` (SIGINT: fast shutdown; SIGQUIT: immediate) and waits for it. */
  stop(signal: 'SIGINT' | 'SIGQUIT'): Promise<void>;
}

async function startServerProcess(
  bin: string,
  args: readonly string[],
  ids: { uid?: number; gid?: number },
  port: number,
  readyTimeoutMs: number,
): Promise<ServerProcess> {
  const shell = spawn('/bin/sh', ['-c', watchdogScript('INT'), 'postgres-watchdog', join(bin, 'postgres'), ...args], {
    ...ids,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  const collect = (chunk: Buffer) => {
    if (output.length < 20_000) output += chunk.toString();
  };
  shell.stdout.on('data', collect);
  shell.stderr.on('data', collect);
  const exited = new Promise<void>((resolve) => shell.once('exit', () => resolve()));
  const pid = await watchdogPid(shell, 'postgres');

  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(pid, name);
    } catch {
      // already gone
    }
  };
  // Belt and braces with the watchdog: a normal exit of this process stops the server at once.
  const killOnExit = () => signal('SIGQUIT');
  process.on('exit', killOnExit);

  let stopped: Promise<void> | undefined;
  const stop = (how: 'SIGINT' | 'SIGQUIT'): Promise<void> =>
    (stopped ??= (async () => {
      if (how === 'SIGQUIT') signal('SIGQUIT');
      shell.stdin.end(); // the watchdog sends SIGINT (fast shutdown) and waits
      const timer = setTimeout(() => {
        signal('SIGKILL');
        shell.kill('SIGKILL');
      }, 15_000);
      await exited;
      clearTimeout(timer);
      process.off('exit', killOnExit);
    })());

  try {
    await waitForQuery(port, readyTimeoutMs, exited);
  } catch (error) {
    await stop('SIGQUIT');
    throw new Error(`postgres on port ${port} did not start: ${(error as Error).message}\n${output}`, { cause: error });
  }
  return { stop };
}

/** Resolves once `SELECT 1` answers on 127.0.0.1:port; rejects when the server exits or the time is up. */
async function waitForQuery(port: number, timeoutMs: number, exited: Promise<void>): Promise<void> {
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    if (gone) throw new Error('the process exited');
    const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 1_000 });
    client.on('error', () => {
      // reported through the failed connect or query
    });
    try {
      await client.connect();
      await client.query('SELECT 1');
      return;
    } catch (error) {
      lastError = error;
    } finally {
      await client.end().catch(() => undefined);
    }
    if (Date.now() > deadline) throw new Error(`no answer within ${timeoutMs} ms: ${(lastError as Error)?.message}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** postgres:16-alpine through testcontainers, when the package is installed and a Docker engine answers. */
async function startContainer(): Promise<LocalPostgres | undefined> {
  let testcontainers: typeof import('testcontainers');
  try {
    testcontainers = await import('testcontainers');
  } catch {
    return undefined; // optional dependency not installed
  }
  const container = await new testcontainers.GenericContainer('postgres:16-alpine')
    .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: 'trust' })
    .withCommand(['postgres', '-c', 'fsync=off', '-c', 'full_page_writes=off', '-c', 'max_connections=200'])
    .withExposedPorts(5432)
    // The image's entrypoint starts the server twice (init, then for real): wait for the second.
    .withWaitStrategy(testcontainers.Wait.forLogMessage(/database system is ready to accept connections/, 2))
    .start();
  const host = container.getHost();
  const port = container.getMappedPort(5432);
  let stopped: Promise<void> | undefined;
  const stop = (timeout: number) => (stopped ??= container.stop({ timeout }).then(() => undefined));
  return {
    url: `postgres://postgres@${host}:${port}/postgres`,
    source: 'testcontainers',
    host,
    port,
    stop: () => stop(10_000),
    kill: () => stop(0),
    restart: async () => {
      throw new Error('restart needs the local PostgreSQL binaries');
    },
  };
}
