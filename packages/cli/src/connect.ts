import { InvalidOptionsError, StoreUnavailableError, supportsAdmin, supportsMarks, type AdminStore, type DedupStore, type MarkStore } from '@onceonly/core';
import type { ClusterOptions, RedisOptions } from 'ioredis';
import type { PoolConfig } from 'pg';
import { CliError, ExitCode, usageError } from './exit-codes.js';

/** A store the CLI can administer, and how to let go of it. */
export interface OpenStore {
  readonly store: DedupStore & MarkStore & AdminStore;
  /** The store's key of a record, when it has keys (Redis; for `inspect`). */
  keyOf?(scope: string, id: string): string;
  /** The table that holds the records, `schema.table`, when the store keeps rows (PostgreSQL; for `inspect`). */
  readonly table?: string;
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

/** What `--postgres` needs. Names left out are the store's defaults. */
export interface PostgresTarget {
  readonly url: string;
  readonly schema: string | undefined;
  readonly table: string | undefined;
  readonly marksTable: string | undefined;
  readonly timeoutMs: number;
}

type RedisModule = typeof import('@onceonly/redis');
type IoRedisModule = typeof import('ioredis');
type PostgresModule = typeof import('@onceonly/postgres');
type PgModule = typeof import('pg');

/** The URL with any password replaced (in its user part, or a `password` parameter), for messages. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    if (parsed.searchParams.has('password')) parsed.searchParams.set('password', '***');
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

/**
 * Loads `@onceonly/postgres` and `pg` (optional peer dependencies, as for Redis), and opens a pool of
 * one connection that fails fast, wrapped in a `PostgresStore` on the given tables.
 *
 * The connection is given up after `--timeout` (`connectionTimeoutMillis`, and a deadline over the
 * whole connect, whatever stage it is stuck in: TCP, TLS, authentication), every statement after the
 * same time (`statement_timeout` on the server, `query_timeout` on the client for a server that went
 * silent). Tables that do not exist are reported by the first command (exit code 3, with how to create
 * them): the CLI never creates or changes tables.
 * @throws {CliError} exit code 5 when a package is missing, 3 when PostgreSQL cannot be reached, 2 for a bad schema or table name.
 */
export async function openPostgresStore(target: PostgresTarget, importer: Importer = nativeImport): Promise<OpenStore> {
  const hint = '--postgres needs both: npm install @onceonly/postgres pg';
  const [{ PostgresStore }, pgModule] = await Promise.all([
    load<PostgresModule>(importer, '@onceonly/postgres', hint),
    load<PgModule | { default: PgModule }>(importer, 'pg', hint),
  ]);
  // pg is CommonJS: its exports arrive as the default export of the ES module namespace.
  const { Pool } = 'default' in pgModule ? pgModule.default : pgModule;
  const config: PoolConfig = {
    connectionString: target.url,
    max: 1,
    connectionTimeoutMillis: target.timeoutMs,
    statement_timeout: target.timeoutMs,
    // The client's own limit comes a little later, so that the server's (a clean SQLSTATE) wins.
    query_timeout: target.timeoutMs + 1_000,
    application_name: 'onceonly-cli',
    allowExitOnIdle: true,
  };
  const pool = new Pool(config);
  // Failures reach us through connect() and the queries (an unhandled 'error' event would crash).
  pool.on('error', () => {});
  const release = () => void pool.end().catch(() => undefined);
  let store: InstanceType<PostgresModule['PostgresStore']>;
  try {
    store = new PostgresStore({
      pool,
      ...(target.schema === undefined ? {} : { schema: target.schema }),
      ...(target.table === undefined ? {} : { table: target.table }),
      ...(target.marksTable === undefined ? {} : { marksTable: target.marksTable }),
    });
  } catch (error) {
    release();
    const message = error instanceof Error ? error.message : String(error);
    // Name the CLI's flags, not the store's options.
    const flags: Record<string, string> = { schema: '--pg-schema', table: '--pg-table', marksTable: '--pg-marks-table' };
    const named = error instanceof InvalidOptionsError ? message.replace(/^PostgresStore option "(\w+)"/, (all, name: string) => flags[name] ?? all) : message;
    throw usageError(named, { cause: error });
  }
  try {
    const client = await withDeadline(pool.connect(), target.timeoutMs, `no answer within ${target.timeoutMs} ms`);
    client.release();
  } catch (error) {
    release();
    const reason = error instanceof Error ? error.message : String(error);
    throw new CliError(ExitCode.STORE_UNAVAILABLE, `cannot reach PostgreSQL at ${redactUrl(target.url)}: ${reason}`, {
      cause: new StoreUnavailableError(reason, { cause: error }),
    });
  }
  if (!supportsAdmin(store) || !supportsMarks(store)) {
    release();
    throw new CliError(ExitCode.MISSING_DEPENDENCY, 'the installed @onceonly/postgres has no admin operations: update it to the version of @onceonly/cli');
  }
  const { schema, table } = store.tables;
  return {
    store,
    table: `${schema}.${table}`,
    close: async () => {
      await withDeadline(pool.end(), target.timeoutMs, 'closing the pool timed out').catch(() => undefined);
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
