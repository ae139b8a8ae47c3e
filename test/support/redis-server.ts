// A real Redis for integration tests, from the cheapest source available:
//   1. REDIS_URL, when set (a server someone else runs);
//   2. a redis-server binary (PATH, /usr/bin, /usr/sbin, /usr/local/bin), started on a free loopback
//      port in a temp dir, without persistence;
//   3. testcontainers (`redis:7`), where a Docker engine answers;
//   else an error that says how to provide one.
// startRedisServer() always starts a separate throwaway server (binary or container), for tests that
// stop or reconfigure Redis.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';
import { executable, freePort, watchdogPid, watchdogScript } from './processes.js';

export { freePort } from './processes.js';

export interface RunningRedis {
  /** `redis://host:port`. */
  url: string;
  /** Where it came from: 'env:REDIS_URL' | 'redis-server' | 'testcontainers'. */
  source: string;
  /** Stops the server (a no-op for REDIS_URL). Safe to call twice. */
  stop(): Promise<void>;
}

export interface LocalRedis extends RunningRedis {
  host: string;
  port: number;
  /** Kills the server abruptly (SIGKILL for a local process) and waits until it is gone. */
  kill(): Promise<void>;
}

export interface StartRedisOptions {
  /** Port to listen on (e.g. to restart on the same one); default a free loopback port. */
  port?: number;
  /** How long to wait for PING to answer. Default 20 s. */
  readyTimeoutMs?: number;
  /** Extra redis-server arguments (local binary only), e.g. `['--cluster-enabled', 'yes']`. */
  args?: string[];
}

const NO_REDIS_HELP =
  'No Redis available for the integration tests. Provide one of: REDIS_URL=redis://host:port, ' +
  'a redis-server binary (e.g. `apt-get install redis-server` or `brew install redis`), ' +
  'or a running Docker engine (testcontainers starts redis:7).';

/** The Redis the test run shares: REDIS_URL, else a local redis-server, else a container. */
export async function resolveRedis(): Promise<RunningRedis> {
  const url = process.env['REDIS_URL'];
  if (url) return { url, source: 'env:REDIS_URL', stop: async () => {} };
  return startRedisServer();
}

/** Starts a separate throwaway Redis: a local redis-server, else a container; throws when neither works. */
export async function startRedisServer(options: StartRedisOptions = {}): Promise<LocalRedis> {
  const binary = findRedisServerBinary();
  if (binary) return startLocalRedis(binary, options);
  if (options.args?.length) throw new Error(`${NO_REDIS_HELP} (extra server arguments need a local redis-server)`);
  const container = await startContainer().catch((error: unknown) => {
    throw new Error(NO_REDIS_HELP, { cause: error });
  });
  if (container) return container;
  throw new Error(NO_REDIS_HELP);
}

/** The redis-server executable, or undefined. */
export function findRedisServerBinary(): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), '/usr/bin', '/usr/sbin', '/usr/local/bin'];
  return dirs.filter(Boolean).map((dir) => join(dir, 'redis-server')).find(executable);
}

/**
 * A connected ioredis client for `url`. Defaults suit tests: no retry storm, and an unreachable server
 * fails the connect instead of hanging. Quit it after use.
 */
export async function connectRedis(url: string, options: RedisOptions = {}): Promise<Redis> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, ...options });
  client.on('error', () => {
    // Reported through the rejected commands; an unhandled 'error' event would crash the worker.
  });
  await client.connect();
  return client;
}

async function startLocalRedis(binary: string, options: StartRedisOptions): Promise<LocalRedis> {
  // A port from freePort() can be taken before redis binds it: try a few.
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = options.port ?? (await freePort());
    try {
      return await startLocalRedisOn(binary, port, options.readyTimeoutMs ?? 20_000, options.args ?? []);
    } catch (error) {
      lastError = error;
      if (options.port !== undefined) break;
    }
  }
  throw lastError;
}

async function startLocalRedisOn(
  binary: string,
  port: number,
  readyTimeoutMs: number,
  extraArgs: readonly string[],
): Promise<LocalRedis> {
  const dir = await mkdtemp(join(tmpdir(), 'onceonly-redis-'));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extraArgs];
  const shell = spawn('/bin/sh', ['-c', watchdogScript('TERM'), 'redis-watchdog', binary, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  const collect = (chunk: Buffer) => {
    if (output.length < 20_000) output += chunk.toString();
  };
  shell.stdout.on('data', collect);
  shell.stderr.on('data', collect);
  const exited = new Promise<void>((resolve) => shell.once('exit', () => resolve()));
  const pid = await watchdogPid(shell, 'redis');

  // Belt and braces with the watchdog: a normal exit of this process kills the server at once.
  const killOnExit = () => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  process.on('exit', killOnExit);

  let stopped: Promise<void> | undefined;
  const stopWith = (signal: 'SIGTERM' | 'SIGKILL'): Promise<void> => {
    stopped ??= (async () => {
      if (signal === 'SIGKILL') killOnExit();
      shell.stdin.end(); // the watchdog sends SIGTERM and waits
      const timer = setTimeout(() => {
        killOnExit();
        shell.kill('SIGKILL');
      }, 10_000);
      await exited;
      clearTimeout(timer);
      process.off('exit', killOnExit);
      await rm(dir, { recursive: true, force: true });
    })();
    return stopped;
  };

  try {
    await waitForPing('127.0.0.1', port, readyTimeoutMs, exited);
  } catch (error) {
    await stopWith('SIGKILL');
    throw new Error(`redis-server on port ${port} did not start: ${(error as Error).message}\n${output}`, {
      cause: error,
    });
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    source: 'redis-server',
    host: '127.0.0.1',
    port,
    stop: () => stopWith('SIGTERM'),
    kill: () => stopWith('SIGKILL'),
  };
}

/** Resolves once the server answers PING on a raw socket; rejects when it exits or the time is up. */
async function waitForPing(host: string, port: number, timeoutMs: number, exited: Promise<void>): Promise<void> {
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (gone) throw new Error('the process exited');
    if (await ping(host, port)) return;
    if (Date.now() > deadline) throw new Error(`no PONG within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function ping(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    let answer = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      answer += chunk.toString();
      if (answer.includes('\r\n')) done(answer.startsWith('+PONG'));
    });
  });
}

export interface LocalRedisCluster {
  /** Seed nodes for `new Cluster(nodes)`. */
  nodes: { host: string; port: number }[];
  servers: LocalRedis[];
  stop(): Promise<void>;
}

/**
 * A Redis Cluster of `size` masters (no replicas) from the local redis-server binary, the 16384 slots
 * split evenly. Throws when there is no binary (a cluster in testcontainers is not worth it here).
 */
export async function startRedisCluster(size = 3, timeoutMs = 30_000): Promise<LocalRedisCluster> {
  if (!findRedisServerBinary()) throw new Error(`${NO_REDIS_HELP} (a cluster needs a local redis-server)`);
  const servers: LocalRedis[] = [];
  const clients: Redis[] = [];
  const stop = async () => {
    for (const client of clients) client.disconnect();
    await Promise.all(servers.map((server) => server.stop()));
  };
  try {
    for (let i = 0; i < size; i++) {
      const busPort = await freePort();
      servers.push(
        await startRedisServer({
          args: ['--cluster-enabled', 'yes', '--cluster-port', String(busPort), '--cluster-node-timeout', '5000'],
        }),
      );
    }
    for (const server of servers) clients.push(await connectRedis(server.url));
    const perNode = Math.ceil(16384 / size);
    for (let i = 0; i < size; i++) {
      const first = i * perNode;
      const last = Math.min(16383, first + perNode - 1);
      await clients[i]!.call('CLUSTER', 'ADDSLOTSRANGE', first, last);
    }
    for (let i = 1; i < size; i++) {
      const busPort = await clients[i]!.config('GET', 'cluster-port');
      await clients[0]!.call('CLUSTER', 'MEET', '127.0.0.1', servers[i]!.port, Number((busPort as string[])[1]));
    }
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const infos = await Promise.all(clients.map((client) => client.call('CLUSTER', 'INFO') as Promise<string>));
      if (infos.every((info) => info.includes('cluster_state:ok') && info.includes(`cluster_known_nodes:${size}`))) break;
      if (Date.now() > deadline) throw new Error(`cluster not ready within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    for (const client of clients.splice(0)) client.disconnect();
    return { nodes: servers.map((s) => ({ host: s.host, port: s.port })), servers, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** redis:7 through testcontainers, when the package is installed and a Docker engine answers. */
async function startContainer(): Promise<LocalRedis | undefined> {
  let testcontainers: typeof import('testcontainers');
  try {
    testcontainers = await import('testcontainers');
  } catch {
    return undefined; // optional dependency not installed
  }
  const container = await new testcontainers.GenericContainer('redis:7')
    .withExposedPorts(6379)
    .withCommand(['redis-server', '--save', '', '--appendonly', 'no'])
    .withWaitStrategy(testcontainers.Wait.forLogMessage('Ready to accept connections'))
    .start();
  const host = container.getHost();
  const port = container.getMappedPort(6379);
  let stopped: Promise<void> | undefined;
  const stop = (timeout: number) => (stopped ??= container.stop({ timeout }).then(() => undefined));
  return {
    url: `redis://${host}:${port}`,
    source: 'testcontainers',
    host,
    port,
    stop: () => stop(10_000),
    kill: () => stop(0),
  };
}
