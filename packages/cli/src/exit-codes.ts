/**
 * The exit codes of `onceonly`. Stable: scripts may branch on them.
 *
 * | code | name                 | when |
 * |------|----------------------|------|
 * | 0    | `OK`                 | the command did what was asked |
 * | 1    | `NOT_FOUND`          | the record or mark asked for does not exist (`inspect`, `purge <scope> <id>`, `mark get`, `mark forget`) |
 * | 2    | `USAGE`              | bad arguments or options (unknown command, missing argument, invalid value) |
 * | 3    | `STORE_UNAVAILABLE`  | the store could not be reached in time or answered with an error (PostgreSQL: also a statement past `--timeout`, or missing tables) |
 * | 4    | `REFUSED`            | a destructive command was not confirmed (no `--yes` and stdin is not a terminal, or the answer was not "y") |
 * | 5    | `MISSING_DEPENDENCY` | the store's optional packages are not installed (`@onceonly/redis` and `ioredis` for `--redis`, `@onceonly/postgres` and `pg` for `--postgres`) |
 * | 6    | `INTERNAL`           | anything else: a bug, please report it |
 * | 130  | `INTERRUPTED`        | stopped by Ctrl-C (SIGINT); a purge stops after its current batch and reports what it removed |
 */
export const ExitCode = {
  OK: 0,
  NOT_FOUND: 1,
  USAGE: 2,
  STORE_UNAVAILABLE: 3,
  REFUSED: 4,
  MISSING_DEPENDENCY: 5,
  INTERNAL: 6,
  INTERRUPTED: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** An error that ends the command with a given exit code and a message for people (on stderr). */
export class CliError extends Error {
  readonly exitCode: ExitCode;
  /** True when the message was already shown (commander prints its own usage errors). */
  readonly reported: boolean;
  constructor(exitCode: ExitCode, message: string, options: { cause?: unknown; reported?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CliError';
    this.exitCode = exitCode;
    this.reported = options.reported ?? false;
  }
}

/** Bad arguments or options: exit code 2. */
export const usageError = (message: string, options?: { cause?: unknown; reported?: boolean }): CliError =>
  new CliError(ExitCode.USAGE, message, options);
