import { InvalidIdError, InvalidOptionsError, StoreUnavailableError, type AdminPurgeProgress } from '@onceonly/core';
import { parseArgs, POSTGRES_URL_ENV, REDIS_URL_ENV, type Invocation } from './args.js';
import { confirm } from './confirm.js';
import { openPostgresStore, openRedisStore, type Importer, type OpenStore } from './connect.js';
import { CliError, ExitCode, usageError } from './exit-codes.js';
import { countRows, display, entryJson, entryRows, recordLines, table } from './format.js';

/** What the CLI touches of its process; tests pass their own. */
export interface CliIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream & { readonly isTTY?: boolean };
  readonly stdin: NodeJS.ReadableStream & { readonly isTTY?: boolean };
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Aborts on Ctrl-C: a purge stops after its current batch, anything else stops at once. */
  readonly signal?: AbortSignal;
  /** Loads the store's optional packages. @defaultValue `import()` */
  readonly importer?: Importer;
  /** Opens the store; for tests that bring their own. @defaultValue Redis from `--redis`, PostgreSQL from `--postgres` */
  readonly open?: (invocation: Invocation) => Promise<OpenStore>;
}

/**
 * Runs one `onceonly` command line (`argv` without `node` and the script) and answers its exit code
 * (see {@link ExitCode}). Results go to stdout (one JSON document with `--json`); prompts, progress
 * and errors go to stderr. Never throws.
 * @example
 * process.exitCode = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env });
 */
export async function main(argv: readonly string[], io: CliIo): Promise<ExitCode> {
  let open: OpenStore | undefined;
  try {
    const parsed = parseArgs(argv, io.env, { out: (s) => io.stdout.write(s), err: (s) => io.stderr.write(s) });
    if (parsed.kind === 'exit') return parsed.code;
    const { invocation } = parsed;
    open = await (io.open ?? openFromOptions(io.importer))(invocation);
    return await run(invocation, open, io);
  } catch (error) {
    return report(error, io);
  } finally {
    await open?.close().catch(() => undefined);
  }
}

function openFromOptions(importer: Importer | undefined): (invocation: Invocation) => Promise<OpenStore> {
  return async ({ global }) => {
    // The parser lets through at most one of them.
    if (global.postgres !== undefined) {
      const target = { url: global.postgres, schema: global.pgSchema, table: global.pgTable, marksTable: global.pgMarksTable, timeoutMs: global.timeoutMs };
      return openPostgresStore(target, importer);
    }
    if (global.redis === undefined) {
      throw usageError(`no store given: pass --redis <url> (or set ${REDIS_URL_ENV}) or --postgres <url> (or set ${POSTGRES_URL_ENV})`);
    }
    return openRedisStore({ url: global.redis, cluster: global.cluster, prefix: global.prefix, timeoutMs: global.timeoutMs }, importer);
  };
}

/** Prints what went wrong on stderr and answers the exit code for it. */
function report(error: unknown, io: CliIo): ExitCode {
  const say = (message: string) => io.stderr.write(`onceonly: ${message}\n`);
  if (error instanceof CliError) {
    if (!error.reported) say(error.message);
    return error.exitCode;
  }
  if (error instanceof StoreUnavailableError) {
    say(error.message);
    return ExitCode.STORE_UNAVAILABLE;
  }
  if (error instanceof InvalidOptionsError || error instanceof InvalidIdError) {
    say(error.message);
    return ExitCode.USAGE;
  }
  say(`unexpected error (please report it): ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
  return ExitCode.INTERNAL;
}

/** Output of one command: JSON, or lines for people. */
class Printer {
  readonly #io: CliIo;
  readonly json: boolean;
  constructor(io: CliIo, json: boolean) {
    this.#io = io;
    this.json = json;
  }
  /** The one JSON document of a `--json` run. */
  doc(value: unknown): void {
    this.#io.stdout.write(`${JSON.stringify(value)}\n`);
  }
  line(text: string): void {
    this.#io.stdout.write(`${text}\n`);
  }
  note(text: string): void {
    this.#io.stderr.write(`onceonly: ${text}\n`);
  }
}

async function run(invocation: Invocation, open: OpenStore, io: CliIo): Promise<ExitCode> {
  const p = new Printer(io, invocation.global.json);
  const { store } = open;
  switch (invocation.command) {
    case 'inspect': {
      const { scope, id } = invocation.args;
      const record = await interruptible(store.inspect(scope, id), io.signal);
      // Where the record lives: its Redis key, or the PostgreSQL table whose row (scope, id) holds it.
      const where = { key: open.keyOf?.(scope, id) ?? null, table: open.table ?? null };
      if (p.json) p.doc(record ? { found: true, scope, id, ...where, record } : { found: false, scope, id, ...where });
      else if (record) p.line(table(recordLines(scope, id, where, record)));
      else p.note(`no record of ${display(id)} in scope ${display(scope)}`);
      return record ? ExitCode.OK : ExitCode.NOT_FOUND;
    }
    case 'list': {
      const { scope, state, limit, cursor, batchSize } = invocation.args;
      const page = await interruptible(store.list(scope, { limit, batchSize, ...(state ? { state } : {}), ...(cursor ? { cursor } : {}) }), io.signal);
      if (p.json) {
        p.doc({ scope, entries: page.entries.map(entryJson), cursor: page.cursor ?? null });
      } else {
        if (page.entries.length === 0) p.line(`(no ${state ?? ''}${state ? ' ' : ''}records)`);
        else p.line(table(entryRows(page.entries)));
        if (page.cursor !== undefined) p.line(`more: --cursor ${page.cursor}`);
      }
      return ExitCode.OK;
    }
    case 'stats': {
      const { scope, batchSize } = invocation.args;
      const counts = await interruptible(store.countByState(scope, { batchSize }), io.signal);
      if (p.json) p.doc({ scope, counts });
      else p.line(table(countRows(counts)));
      return ExitCode.OK;
    }
    case 'purge': {
      const { scope, id, dryRun, yes } = invocation.args;
      const record = await interruptible(store.inspect(scope, id), io.signal);
      if (record === undefined) {
        if (p.json) p.doc({ scope, id, found: false, purged: false, dryRun });
        else p.note(`no record of ${display(id)} in scope ${display(scope)}`);
        return ExitCode.NOT_FOUND;
      }
      if (dryRun) {
        if (p.json) p.doc({ scope, id, found: true, purged: false, dryRun, state: record.state });
        else p.line(`would purge the ${record.state} record of ${display(id)} in scope ${display(scope)}`);
        return ExitCode.OK;
      }
      if (!yes) await confirm(`Purge the ${record.state} record of ${display(id)} in scope ${display(scope)}?`, io);
      const purged = await store.purge(scope, id);
      if (p.json) p.doc({ scope, id, found: purged, purged, dryRun, state: record.state });
      else if (purged) p.line(`purged the ${record.state} record of ${display(id)} in scope ${display(scope)}`);
      else p.note(`the record of ${display(id)} was gone before the purge`);
      return purged ? ExitCode.OK : ExitCode.NOT_FOUND;
    }
    case 'purgeScope': {
      const { scope, dryRun, yes, batchSize, includeMarks, progress } = invocation.args;
      const what = includeMarks ? 'record and offset mark' : 'record';
      if (!dryRun && !yes) {
        await confirm(`Purge every ${what} of scope ${display(scope)}${invocation.global.prefix ? ` (prefix ${display(invocation.global.prefix)})` : ''}? This cannot be undone.`, io);
      }
      const meter = progress ? new Progress(io, dryRun ? 'found' : 'purged') : undefined;
      const result = await store.purgeScope(scope, {
        dryRun,
        includeMarks,
        batchSize,
        ...(meter ? { onProgress: (n: AdminPurgeProgress) => meter.update(n) } : {}),
        ...(io.signal ? { signal: io.signal } : {}),
      });
      meter?.done();
      if (p.json) {
        p.doc({ scope, ...result });
      } else {
        const marks = includeMarks ? ` and ${result.marks} offset mark${plural(result.marks)}` : '';
        const verb = dryRun ? 'would purge' : 'purged';
        p.line(`${verb} ${result.records} record${plural(result.records)}${marks} of scope ${display(scope)}${result.aborted ? ' before being interrupted' : ''}`);
      }
      return result.aborted ? ExitCode.INTERRUPTED : ExitCode.OK;
    }
    case 'markGet':
    case 'markForget': {
      const { group, topic, partition } = invocation.args;
      // The Kafka adapter's mark name (`markName` in @onceonly/kafka): the CLI stands on core only.
      const ref = { scope: group, name: `${topic}:${partition}` };
      const where = { group, topic, partition };
      const mark = await interruptible(store.getMark(ref), io.signal);
      if (invocation.command === 'markGet' || mark === undefined || invocation.args.dryRun) {
        if (p.json) p.doc(invocation.command === 'markGet' ? { ...where, found: mark !== undefined, mark: mark ?? null } : { ...where, found: mark !== undefined, forgotten: false, dryRun: invocation.args.dryRun, mark: mark ?? null });
        else if (mark === undefined) p.note(`no mark for group ${display(group)}, topic ${display(topic)}, partition ${partition}`);
        else p.line(table([['group', display(group)], ['topic', display(topic)], ['partition', String(partition)], ['completed offsets', `${mark.low}..${mark.high}`]]));
        return mark === undefined ? ExitCode.NOT_FOUND : ExitCode.OK;
      }
      if (!invocation.args.yes) {
        await confirm(`Forget the mark (offsets ${mark.low}..${mark.high}) of group ${display(group)}, topic ${display(topic)}, partition ${partition}? Replays of those offsets are then only caught by the ID records in the window.`, io);
      }
      await store.deleteMark(ref);
      if (p.json) p.doc({ ...where, found: true, forgotten: true, dryRun: false, mark });
      else p.line(`forgot the mark (offsets ${mark.low}..${mark.high}) of group ${display(group)}, topic ${display(topic)}, partition ${partition}`);
      return ExitCode.OK;
    }
  }
}

const plural = (n: number): string => (n === 1 ? '' : 's');

/** `work`, or a rejection with exit code 130 as soon as `signal` aborts (Ctrl-C). */
async function interruptible<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return work;
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(new CliError(ExitCode.INTERRUPTED, 'interrupted'));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([work, aborted]);
  } finally {
    signal.removeEventListener('abort', onAbort!);
  }
}

/**
 * Running totals of a long purge on stderr, never on stdout: one line as soon as the first batch is
 * done, then one a second (on a terminal, one line rewritten in place, ten times a second).
 */
class Progress {
  readonly #io: CliIo;
  readonly #verb: string;
  readonly #tty: boolean;
  #last = 0;
  #shown = false;

  constructor(io: CliIo, verb: string) {
    this.#io = io;
    this.#verb = verb;
    this.#tty = io.stderr.isTTY === true;
  }

  update({ records, marks }: AdminPurgeProgress): void {
    const now = Date.now();
    if (this.#shown && now - this.#last < (this.#tty ? 100 : 1_000)) return;
    this.#last = now;
    this.#shown = true;
    const text = `${this.#verb} ${records} record${plural(records)}${marks ? ` and ${marks} mark${plural(marks)}` : ''} so far`;
    this.#io.stderr.write(this.#tty ? `\r\x1b[K${text}…` : `onceonly: ${text}\n`);
  }

  done(): void {
    if (this.#tty && this.#shown) this.#io.stderr.write('\r\x1b[K');
  }
}
