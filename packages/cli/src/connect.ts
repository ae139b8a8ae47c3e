import { StoreUnavailableError, supportsAdmin, supportsMarks, type AdminStore, type DedupStore, type MarkStore } from '@onceonly/core';
import type { ClusterOptions, RedisOptions } from 'ioredis';
import { CliError, ExitCode, usageError } from './exit-codes.js';

/** A store the CLI can administer, and how to let go of it. */
export interface OpenStore {
  readonly store: DedupStore & MarkStore & AdminStore;
  /** The store's key of a record, when it has keys (for `inspect`). */
  keyOf?(scope: string, id: string): string;
  close(): Promise<void>;
}

/** Loads a module by name: `import()` in real use; tests substitute one that fails. */
export type Importer = (specifier: string) => Promise<unknown>;

const nativeImport: Importer = (specifier) => import(specifier);

/** What `--redis` needs. */
export interface RedisTarget {
  readonly url: string;
  readonly cluster: boolean;
  readonly prefix: string | undefined;
  readonly timeoutMs: number;
}

type RedisModule = typeof import('@onceonly/redis');
type IoRedisModule = typeof import('ioredis');

/** The URL with any password replaced, for messages. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(invalid URL)';
  }
}

async function load<T>(importer: Importer, specifier: string, hint: string): Promise<T> {
  try {
    return (await importer(specifier)) as T;
  } catch (error) {
    const code = (error as { code?: unknown })?.code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new CliError(ExitCode.MISSING_DEPENDENCY, `cannot load ${specifier}, an optional dependency of @onceonly/cli. ${hint}`, { cause: error });
    }
    throw error;
  }
}

/**
 * Loads `@onceonly/redis` and `ioredis` (optional peer dependencies, so the CLI installs without them),
 * connects a fail-fast client and wraps it in a `RedisStore`.
 *
 * The client never hangs: no offline queue, one retry per command, no reconnection, and
 * `connectTimeout`/`commandTimeout` from `--timeout`; the connection as a whole is given up after
 * the same time, whatever stage it is stuck in (TCP, TLS, AUTH, cluster slots).
 * @throws {CliError} exit code 5 when a package is missing, 3 when Redis cannot be reached, 2 for a bad prefix.
 */
export async function openRedisStore(target: RedisTarget, importer: Importer = nativeImport): Promise<OpenStore> {
  const hint = '--redis needs both: npm install @onceonly/redis ioredis';
  const [{ RedisStore }, ioredis] = await Promise.all([
    load<RedisModule>(importer, '@onceonly/redis', hint),
    load<IoRedisModule>(importer, 'ioredis', hint),
  ]);
  const { Redis, Cluster } = ioredis;
  const failFast: RedisOptions = {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: target.timeoutMs,
    commandTimeout: target.timeoutMs,
    retryStrategy: () => null,
    // How long a closing socket may linger: ioredis waits this long even on one that already failed.
    disconnectTimeout: Math.min(target.timeoutMs, 500),
    connectionName: 'onceonly-cli',
  };
  const client = target.cluster ? new Cluster([target.url], clusterOptions(target, failFast)) : new Redis(target.url, failFast);
  // Failures reach us through connect() and the commands (an unhandled 'error' event would crash);
  // the event says why a connection failed ("connect ECONNREFUSED ..."), connect() only that it closed.
  let lastError: Error | undefined;
  client.on('error', (error: Error) => (lastError = error));
  try {
    await withDeadline(client.connect(), target.timeoutMs, `no answer within ${target.timeoutMs} ms`);
  } catch (error) {
    if (client.status !== 'end') client.disconnect();
    const reason = lastError?.message ?? (error instanceof Error ? error.message : String(error));
    throw new CliError(ExitCode.STORE_UNAVAILABLE, `cannot reach Redis at ${redactUrl(target.url)}: ${reason}`, {
      cause: new StoreUnavailableError(reason, { cause: error }),
    });
  }
  let store: InstanceType<RedisModule['RedisStore']>;
  try {
    store = new RedisStore({ client, ...(target.prefix === undefined ? {} : { prefix: target.prefix }) });
  } catch (error) {
    client.disconnect();
    throw usageError(error instanceof Error ? error.message : String(error), { cause: error });
  }
  if (!supportsAdmin(store) || !supportsMarks(store)) {
    client.disconnect();
    throw new CliError(ExitCode.MISSING_DEPENDENCY, 'the installed @onceonly/redis has no admin operations: update it to the version of @onceonly/cli');
  }
  return {
    store,
    keyOf: (scope, id) => store.keyOf(scope, id),
    close: async () => {
      // quit() waits for pending replies; a dead connection would make it hang, so disconnect then.
      await withDeadline(client.quit(), target.timeoutMs, 'quit timed out').catch(() => client.disconnect());
    },
  };
}

function clusterOptions(target: RedisTarget, redisOptions: RedisOptions): ClusterOptions {
  // Nodes found through CLUSTER SLOTS get `redisOptions` only: carry the URL's credentials and TLS.
  const url = new URL(target.url);
  const auth: RedisOptions = {
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    ...(url.protocol === 'rediss:' ? { tls: {} } : {}),
  };
  return {
    lazyConnect: true,
    enableOfflineQueue: false,
    clusterRetryStrategy: () => null,
    slotsRefreshTimeout: target.timeoutMs,
    redisOptions: { ...redisOptions, ...auth },
  };
}

/** `promise`, or a rejection with `message` after `ms`. */
async function withDeadline<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
