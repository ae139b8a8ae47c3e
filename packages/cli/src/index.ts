/**
 * `@onceonly/cli`: the `onceonly` command line (inspect, list, count and purge records and offset
 * marks of a store). The package is meant for its `onceonly` executable; `main` runs it in-process.
 *
 * @example
 * import { main, ExitCode } from '@onceonly/cli';
 * const code = await main(['--redis', 'redis://127.0.0.1:6379', '--json', 'stats', 'orders'], {
 *   stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env,
 * });
 * if (code === ExitCode.STORE_UNAVAILABLE) console.error('Redis is down');
 *
 * @packageDocumentation
 */
export { main, type CliIo } from './main.js';
export { parseArgs, POSTGRES_URL_ENV, REDIS_URL_ENV, type GlobalOptions, type Invocation, type Parsed, type ParserOutput } from './args.js';
export { CliError, ExitCode } from './exit-codes.js';
export { openPostgresStore, openRedisStore, type Importer, type OpenStore, type PostgresTarget, type RedisTarget } from './connect.js';
export { display } from './format.js';
