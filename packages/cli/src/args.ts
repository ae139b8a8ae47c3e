import { readFileSync } from 'node:fs';
import { ADMIN_RECORD_STATES, MAX_ADMIN_BATCH } from '@onceonly/core';
import { Command, CommanderError, Option } from 'commander';
import { z } from 'zod';
import { ExitCode, usageError } from './exit-codes.js';

/** Environment variable read when no store option is given (keeps a password out of `ps` output). */
export const REDIS_URL_ENV = 'ONCEONLY_REDIS_URL';

/** Environment variable read when no store option is given, for the PostgreSQL store. */
export const POSTGRES_URL_ENV = 'ONCEONLY_POSTGRES_URL';

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

// ---- Schemas: what each command needs, validated once the parser has split the command line. ----

const wholeNumber = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));

const nonEmpty = z.string({ error: (issue) => (issue.input === undefined ? 'is missing' : 'must be a string') }).min(1, 'must not be empty');

/** Options every command takes. At most one of `redis` and `postgres` is set (see {@link pickStore}). */
const globalSchema = z.object({
  redis: z
    .url({ protocol: /^rediss?$/, error: 'must be a redis:// or rediss:// URL' })
    .optional(),
  cluster: z.boolean().default(false),
  prefix: nonEmpty.optional(),
  postgres: z
    .url({ protocol: /^postgres(ql)?$/, error: 'must be a postgres:// or postgresql:// URL' })
    .optional(),
  // Checked by PostgresStore itself (the CLI does not load @onceonly/postgres before it needs it).
  pgSchema: nonEmpty.optional(),
  pgTable: nonEmpty.optional(),
  pgMarksTable: nonEmpty.optional(),
  json: z.boolean().default(false),
  timeoutMs: wholeNumber(100, 600_000).default(5_000),
});

export type GlobalOptions = z.output<typeof globalSchema>;

const batchSize = wholeNumber(1, MAX_ADMIN_BATCH).default(500);

/** An ID from `<id>`, or from `--id-json` for IDs a command line cannot carry (NUL, lone surrogates). */
const idSchema = nonEmpty;

const schemas = {
  inspect: z.object({ scope: nonEmpty, id: idSchema }),
  list: z.object({
    scope: nonEmpty,
    state: z.enum(ADMIN_RECORD_STATES).optional(),
    limit: wholeNumber(1, MAX_ADMIN_BATCH).default(100),
    cursor: nonEmpty.optional(),
    batchSize,
  }),
  purge: z.object({ scope: nonEmpty, id: idSchema, dryRun: z.boolean(), yes: z.boolean() }),
  purgeScope: z.object({
    scope: nonEmpty,
    dryRun: z.boolean(),
    yes: z.boolean(),
    batchSize,
    includeMarks: z.boolean(),
    progress: z.boolean(),
  }),
  markGet: z.object({ group: nonEmpty, topic: nonEmpty, partition: wholeNumber(0, 2 ** 31 - 1) }),
  markForget: z.object({ group: nonEmpty, topic: nonEmpty, partition: wholeNumber(0, 2 ** 31 - 1), dryRun: z.boolean(), yes: z.boolean() }),
  stats: z.object({ scope: nonEmpty, batchSize }),
} as const;

type Schemas = typeof schemas;
/** A parsed, validated command line. */
export type Invocation = {
  [K in keyof Schemas]: { readonly command: K; readonly global: GlobalOptions; readonly args: z.output<Schemas[K]> };
}[keyof Schemas];

/** What parsing answers: a command to run, or an exit code (help or version was printed). */
export type Parsed = { readonly kind: 'run'; readonly invocation: Invocation } | { readonly kind: 'exit'; readonly code: ExitCode };

/** Where the parser writes help, version and its own error messages. */
export interface ParserOutput {
  out(text: string): void;
  err(text: string): void;
}

// Option and argument names as the user typed them, for error messages.
const FLAGS: Readonly<Record<string, string>> = {
  redis: '--redis',
  prefix: '--prefix',
  postgres: '--postgres',
  pgSchema: '--pg-schema',
  pgTable: '--pg-table',
  pgMarksTable: '--pg-marks-table',
  timeoutMs: '--timeout',
  limit: '--limit',
  batchSize: '--batch-size',
  state: '--state',
  cursor: '--cursor',
  group: '--group',
  topic: '--topic',
  partition: '--partition',
  scope: '<scope>',
  id: '<id>',
};

function validate<S extends z.ZodType>(schema: S, raw: unknown): z.output<S> {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const key = String(issue.path[0] ?? '');
  throw usageError(`${FLAGS[key] ?? key} ${issue.message}`, { cause: parsed.error });
}

/** The ID from `<id>` or `--id-json`, exactly one of them. */
function pickId(positional: string | undefined, idJson: string | undefined): string | undefined {
  if (idJson === undefined) return positional;
  if (positional !== undefined) throw usageError('give the ID either as <id> or with --id-json, not both');
  let id: unknown;
  try {
    id = JSON.parse(idJson);
  } catch (error) {
    throw usageError('--id-json must be a JSON string, e.g. --id-json \'"a\\u0000b"\'', { cause: error });
  }
  if (typeof id !== 'string') throw usageError('--id-json must be a JSON string, e.g. --id-json \'"a\\u0000b"\'');
  return id;
}

type Raw = Record<string, unknown>;
type Capture = (command: keyof Schemas, args: Raw, global: Raw) => void;

/** The commander program. Actions only capture what was parsed; running happens elsewhere. */
function buildProgram(capture: Capture, output: ParserOutput): Command {
  const program = new Command('onceonly')
    .description('Inspect, list, count and purge onceonly dedup records and offset marks.')
    .version(VERSION, '-V, --version')
    .option('--redis <url>', `Redis URL, redis:// or rediss:// (default: $${REDIS_URL_ENV})`)
    .option('--cluster', 'the --redis URL is a Redis Cluster node')
    .option('--prefix <prefix>', 'with --redis: key prefix of the store (default: the store\'s, "onceonly")')
    .option('--postgres <url>', `PostgreSQL URL, postgres:// or postgresql:// (default: $${POSTGRES_URL_ENV}); not with --redis`)
    .option('--pg-schema <name>', 'with --postgres: schema of the tables (default: the store\'s, "public")')
    .option('--pg-table <name>', 'with --postgres: table of the records (default: the store\'s, "onceonly_records")')
    .option('--pg-marks-table <name>', 'with --postgres: table of the offset marks (default: the store\'s, "onceonly_marks")')
    .option('--json', 'print one JSON document on stdout')
    .option('--timeout <ms>', 'connect and command timeout in ms (PostgreSQL: also its statement_timeout)', '5000')
    .showHelpAfterError('(run onceonly --help for usage)')
    .exitOverride()
    .configureOutput({ writeOut: (s) => output.out(s), writeErr: (s) => output.err(s) })
    .addHelpText(
      'after',
      `
Exit codes: 0 ok, 1 not found, 2 usage error, 3 store unavailable, 4 refused (not confirmed),
5 missing optional dependency, 6 internal error, 130 interrupted.

Examples:
  onceonly --redis redis://127.0.0.1:6379 inspect orders 0192f1a2-7b3c-7d4e-8f00-123456789abc
  onceonly --redis redis://127.0.0.1:6379 list orders --state failed --limit 20
  onceonly --redis redis://127.0.0.1:6379 purge --scope orders --dry-run
  onceonly --redis redis://127.0.0.1:6379 mark get --group billing --topic invoices --partition 3
  onceonly --postgres postgres://app@127.0.0.1:5432/app --pg-schema jobs stats orders`,
    );
  const global = (cmd: Command): Raw => cmd.optsWithGlobals();
  const on = (cmd: Command) => cmd.exitOverride().configureOutput({ writeOut: (s) => output.out(s), writeErr: (s) => output.err(s) });

  on(program.command('inspect'))
    .description('show one record as the store keeps it (exit 1 when there is none)')
    .argument('<scope>', 'the dedup scope')
    .argument('[id]', 'the message ID (use -- before an ID that starts with "-")')
    .option('--id-json <json>', 'the ID as a JSON string, for IDs a command line cannot carry')
    .action((scope: string, id: string | undefined, opts: Raw, cmd: Command) =>
      capture('inspect', { scope, id: pickId(id, opts['idJson'] as string | undefined) }, global(cmd)),
    );

  on(program.command('list'))
    .description("list a scope's records, page by page (Redis: SCAN, never KEYS; PostgreSQL: in ID order)")
    .argument('<scope>', 'the dedup scope')
    .addOption(new Option('--state <state>', 'only records in this state').choices(ADMIN_RECORD_STATES))
    .option('--limit <n>', 'most records to print', '100')
    .option('--cursor <cursor>', 'continue where the previous page ended')
    .option('--batch-size <n>', 'keys (Redis, per SCAN step) or rows (PostgreSQL, per statement) examined per step', '500')
    .action((scope: string, opts: Raw, cmd: Command) => capture('list', { scope, ...opts }, global(cmd)));

  on(program.command('purge'))
    .description('remove one record (purge <scope> <id>) or every record of a scope (purge --scope <scope>)')
    .argument('[scope]', 'the dedup scope of the record')
    .argument('[id]', 'the message ID')
    .option('--scope <scope>', 'remove every record of this scope')
    .option('--id-json <json>', 'the ID as a JSON string, for IDs a command line cannot carry')
    .option('--dry-run', 'say what would be removed, remove nothing')
    .option('-y, --yes', 'do not ask for confirmation')
    .option('--include-marks', 'with --scope: also remove the scope\'s offset marks')
    .option('--batch-size <n>', 'with --scope: keys or rows examined and removed per step', '500')
    .option('--no-progress', 'with --scope: no progress on stderr')
    .action((scope: string | undefined, id: string | undefined, opts: Raw, cmd: Command) => {
      const common = { dryRun: opts['dryRun'] === true, yes: opts['yes'] === true };
      const whole = opts['scope'] as string | undefined;
      if (whole !== undefined) {
        if (scope !== undefined || opts['idJson'] !== undefined) throw usageError('purge --scope <scope> takes no <scope> <id> arguments');
        capture('purgeScope', { scope: whole, ...common, batchSize: opts['batchSize'], includeMarks: opts['includeMarks'] === true, progress: opts['progress'] !== false }, global(cmd));
        return;
      }
      if (opts['includeMarks'] === true) throw usageError('--include-marks goes with purge --scope <scope>');
      const theId = pickId(id, opts['idJson'] as string | undefined);
      if (scope === undefined || theId === undefined) throw usageError('purge needs <scope> <id>, or --scope <scope> for a whole scope');
      capture('purge', { scope, id: theId, ...common }, global(cmd));
    });

  const mark = on(program.command('mark')).description('offset high-water marks of a Kafka consumer (scope = group)');
  const markOptions = (cmd: Command) =>
    on(cmd)
      .requiredOption('--group <group>', "the consumer's dedup scope: its group ID, unless it sets its own scope")
      .requiredOption('--topic <topic>', 'the topic')
      .requiredOption('--partition <n>', 'the partition');
  markOptions(mark.command('get'))
    .description('show the mark: the range of offsets known completed (exit 1 when there is none)')
    .action((opts: Raw, cmd: Command) => capture('markGet', opts, global(cmd)));
  markOptions(mark.command('forget'))
    .description('remove the mark (e.g. after a topic was deleted and created again)')
    .option('--dry-run', 'show the mark, remove nothing')
    .option('-y, --yes', 'do not ask for confirmation')
    .action((opts: Raw, cmd: Command) => capture('markForget', { ...opts, dryRun: opts['dryRun'] === true, yes: opts['yes'] === true }, global(cmd)));

  on(program.command('stats'))
    .description("count a scope's records by state")
    .argument('<scope>', 'the dedup scope')
    .option('--batch-size <n>', 'keys or rows examined per step', '500')
    .action((scope: string, opts: Raw, cmd: Command) => capture('stats', { scope, ...opts }, global(cmd)));

  return program;
}

/**
 * Parses a command line (without `node` and the script) into a validated {@link Invocation}.
 * Help and version are printed to `output` and answered as `{ kind: 'exit' }`.
 * @throws {CliError} with exit code 2 for any usage error (commander's message is already on `output.err`).
 * @example
 * const parsed = parseArgs(['--redis', 'redis://127.0.0.1:6379', 'stats', 'orders'], process.env, output);
 */
export function parseArgs(argv: readonly string[], env: Readonly<Record<string, string | undefined>>, output: ParserOutput): Parsed {
  let captured: { command: keyof Schemas; args: Raw; global: Raw } | undefined;
  const program = buildProgram((command, args, global) => (captured = { command, args, global }), output);
  try {
    program.parse([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version "fail" with exit code 0; commander has printed them, or its error message.
      if (error.exitCode === 0) return { kind: 'exit', code: ExitCode.OK };
      throw usageError(error.message.replace(/^error: /, ''), { cause: error, reported: true });
    }
    throw error;
  }
  if (captured === undefined) throw usageError('no command given (run onceonly --help for usage)');
  const { command, args, global } = captured;
  const globalOptions = validate(globalSchema, {
    ...pickStore(global, env),
    cluster: global['cluster'] === true,
    prefix: global['prefix'],
    pgSchema: global['pgSchema'],
    pgTable: global['pgTable'],
    pgMarksTable: global['pgMarksTable'],
    json: global['json'] === true,
    timeoutMs: global['timeout'],
  });
  const invocation = { command, global: globalOptions, args: validate(schemas[command], args) } as Invocation;
  return { kind: 'run', invocation };
}

/**
 * The store's URL: `--redis` or `--postgres` (never both), else the one of `$ONCEONLY_REDIS_URL` and
 * `$ONCEONLY_POSTGRES_URL` that is set (never both). Options of the other store are refused, so that a
 * `--prefix` meant for Redis never silently does nothing against PostgreSQL. No store at all is left
 * to the runner (a usage error there).
 */
function pickStore(global: Raw, env: Readonly<Record<string, string | undefined>>): { redis?: unknown; postgres?: unknown } {
  const redis = global['redis'];
  const postgres = global['postgres'];
  if (redis !== undefined && postgres !== undefined) throw usageError('--redis and --postgres are mutually exclusive: give one store');
  let picked: { redis?: unknown; postgres?: unknown };
  if (redis !== undefined) picked = { redis };
  else if (postgres !== undefined) picked = { postgres };
  else {
    const fromEnv = { redis: env[REDIS_URL_ENV] || undefined, postgres: env[POSTGRES_URL_ENV] || undefined };
    if (fromEnv.redis !== undefined && fromEnv.postgres !== undefined) {
      throw usageError(`${REDIS_URL_ENV} and ${POSTGRES_URL_ENV} are both set: pass --redis <url> or --postgres <url> to choose the store`);
    }
    picked = fromEnv.redis !== undefined ? { redis: fromEnv.redis } : fromEnv.postgres !== undefined ? { postgres: fromEnv.postgres } : {};
  }
  if (picked.postgres !== undefined) {
    if (global['cluster'] === true) throw usageError('--cluster goes with --redis, not with --postgres');
    if (global['prefix'] !== undefined) throw usageError('--prefix goes with --redis; with --postgres, --pg-schema and --pg-table say where the records are');
  } else {
    const pgOption = (['pgSchema', 'pgTable', 'pgMarksTable'] as const).find((name) => global[name] !== undefined);
    if (pgOption !== undefined) throw usageError(`${FLAGS[pgOption]} goes with --postgres`);
  }
  return picked;
}
