/**
 * The PostgreSQL side of `AdminStore` (`@onceonly/core`), used by `PostgresStore`: operator tools
 * (the `onceonly` CLI, dashboards, runbooks), never on the hot path.
 *
 * - **Keyset pagination over the primary key.** A scope's rows are walked in `id` order (byte order:
 *   the column is `COLLATE "C"`) with `scope = $1 AND id > $2 ORDER BY id LIMIT $3`, an index range
 *   scan of the primary key (scope, id) that starts where the previous step ended. Never `OFFSET`
 *   (whose cost grows with the offset), never `LIKE` (scopes and IDs are compared as values, so any
 *   character, `%`, `_`, quotes and backslashes included, means itself).
 * - **Bounded statements.** Each statement examines at most `batchSize` rows and answers at most
 *   `limit + 1` (list) or one row (counts, purges): a call over a large scope is many short
 *   statements, never one long one holding locks.
 * - **Expired rows are absent**, as for the store itself: a row whose window is over (`expires_at` at
 *   or before the database clock, read once per statement) is neither inspected, listed, counted nor
 *   counted as purged. `purge` and `purgeScope` delete it anyway (it is garbage), without counting it.
 *   Released rows (tombstones) and in-progress rows whose lease ran out are shown as they are, as in
 *   Redis.
 * - **Entries have their ID.** The table keeps each ID as it is, so a listing gives every ID back;
 *   an entry's `keyPart` is the ID itself (the row's key within the scope).
 * - **A list cursor** is `p1.` and the base64url (UTF-8) of the last ID the page examined: opaque,
 *   command-line safe, and refused (InvalidOptionsError) when it is not one this store hands out.
 */
import { createHash } from 'node:crypto';
import {
  InvalidOptionsError,
  parseAdminCountOptions,
  parseAdminListOptions,
  parseAdminPurgeScopeOptions,
  type AdminCountOptions,
  type AdminCounts,
  type AdminEntry,
  type AdminListOptions,
  type AdminPage,
  type AdminPurgeResult,
  type AdminPurgeScopeOptions,
  type AdminRecord,
  type AdminRecordState,
  type AdminStore,
} from '@onceonly/core';
import type { QueryResultRow } from 'pg';
import { storeUnavailable } from './errors.js';
import { checkId, checkScope } from './requests.js';
import { toNumber } from './rows.js';
import { ms, NOW, type QualifiedNames } from './sql.js';
import type { Statement } from './statements.js';

/** Runs one statement the way the store runs its own (prepared, errors as `StoreUnavailableError`). */
export type AdminQuery = <R extends QueryResultRow>(operation: string, statement: Statement, values: unknown[]) => Promise<readonly R[]>;

/** The admin statements of one store's tables. */
export interface AdminStatements {
  readonly inspect: Statement;
  readonly listStep: Statement;
  readonly purge: Statement;
  readonly purgeStep: Statement;
  readonly countStep: Statement;
  readonly purgeMarksStep: Statement;
  readonly countMarksStep: Statement;
  readonly countMarks: Statement;
}

/** A record row as the admin statements answer it. Times are ms since the epoch (float8), tokens text. */
interface AdminRow {
  state: number;
  token: string;
  claimed_at: number;
  updated_at: number;
  lease_until: number;
  expires_at: number;
  suspect: boolean;
  fingerprint: string | null;
  extra: string | null;
  read_at: number;
}

/** A list step: how many rows it examined and the last one, then its entries (`id` null when none). */
type ListRow = { examined: number; last: string | null; id: string | null } & Partial<AdminRow>;

/** A purge or count step over records or marks. */
interface StepRow {
  examined: number;
  last: string | null;
  /** Live rows removed (or found, in a dry run). */
  counted: number;
}

interface CountRow extends StepRow {
  in_progress: number;
  completed: number;
  failed: number;
  released: number;
  lease_expired: number;
  suspect: number;
}

/** Record states by the `state` column: 0 released, 1 in progress, 2 completed, 3 failed. */
const STATES: readonly AdminRecordState[] = ['released', 'in-progress', 'completed', 'failed'];
const STATE_CODES: Readonly<Record<AdminRecordState, number>> = { released: 0, 'in-progress': 1, completed: 2, failed: 3 };

const named = (operation: string, text: string): Statement => ({
  // As the store's statements: the hash ties a prepared statement to its exact text (table names included).
  name: `onceonly_admin_${operation}_${createHash('sha256').update(text).digest('hex').slice(0, 12)}`,
  text,
});

/** The columns of an admin record (`r` a records row), read at the statement's clock. */
const recordColumns = (r: string): string => `${r}.state, ${r}.token::text AS token, ${ms(`${r}.claimed_at`)} AS claimed_at,
  ${ms(`${r}.updated_at`)} AS updated_at, ${ms(`${r}.lease_until`)} AS lease_until, ${ms(`${r}.expires_at`)} AS expires_at,
  ${r}.suspect, ${r}.fingerprint, CASE ${r}.state WHEN 2 THEN ${r}.result WHEN 3 THEN ${r}.error END AS extra, ${ms(NOW)} AS read_at`;

/**
 * One step over a scope: at most `$3` rows after `$2` in key order, through the primary key. `$2` is
 * `''` for the first step (every ID and mark name is non-empty).
 */
const step = (table: string, key: 'id' | 'name', columns: string): string =>
  `SELECT ${columns} FROM ${table} WHERE scope = $1 AND ${key} > $2 ORDER BY ${key} LIMIT $3`;

export function buildAdminStatements(q: QualifiedNames): AdminStatements {
  return {
    inspect: named('inspect', `SELECT ${recordColumns('r')} FROM ${q.records} r WHERE r.scope = $1 AND r.id = $2 AND r.expires_at > ${NOW}`),
    // The step's size and last row, then up to $5 live entries of it (in state $4 when given). One
    // row with a null id when none matched.
    listStep: named(
      'list_step',
      `WITH step AS (${step(q.records, 'id', '*')}),
seen AS (SELECT count(*)::int AS examined, max(id) AS last FROM step)
SELECT seen.examined, seen.last, e.*
FROM seen LEFT JOIN LATERAL (
  SELECT r.id, ${recordColumns('r')} FROM step r
  WHERE r.expires_at > ${NOW} AND ($4::smallint IS NULL OR r.state = $4::smallint)
  ORDER BY r.id LIMIT $5
) e ON true
ORDER BY e.id`,
    ),
    // Deletes the row whatever it holds; answers whether it was live (an expired one is absent).
    purge: named('purge', `DELETE FROM ${q.records} WHERE scope = $1 AND id = $2 RETURNING expires_at > ${NOW} AS live`),
    // $4: delete (false in a dry run, which only counts). `= ANY (ARRAY(…))` keeps the delete on the
    // primary key: a join with the step may be planned as a hash join over the whole scope.
    purgeStep: named(
      'purge_step',
      `WITH step AS (${step(q.records, 'id', 'id, expires_at')}),
gone AS (
  DELETE FROM ${q.records} r WHERE $4::boolean AND r.scope = $1 AND r.id = ANY (ARRAY(SELECT id FROM step))
  RETURNING r.expires_at > ${NOW} AS live
)
SELECT (SELECT count(*) FROM step)::int AS examined, (SELECT max(id) FROM step) AS last,
  CASE WHEN $4::boolean THEN (SELECT count(*) FROM gone WHERE live) ELSE (SELECT count(*) FROM step WHERE expires_at > ${NOW}) END::int AS counted`,
    ),
    countStep: named(
      'count_step',
      `SELECT count(*)::int AS examined, max(id) AS last, count(*) FILTER (WHERE live)::int AS counted,
  count(*) FILTER (WHERE live AND state = 1)::int AS in_progress,
  count(*) FILTER (WHERE live AND state = 2)::int AS completed,
  count(*) FILTER (WHERE live AND state = 3)::int AS failed,
  count(*) FILTER (WHERE live AND state = 0)::int AS released,
  count(*) FILTER (WHERE live AND state = 1 AND lease_until <= ${NOW})::int AS lease_expired,
  count(*) FILTER (WHERE live AND suspect)::int AS suspect
FROM (${step(q.records, 'id', `id, state, suspect, lease_until, expires_at > ${NOW} AS live`)}) s`,
    ),
    // Marks never expire: every one counts.
    purgeMarksStep: named(
      'purge_marks_step',
      `WITH step AS (${step(q.marks, 'name', 'name')}),
gone AS (DELETE FROM ${q.marks} m WHERE m.scope = $1 AND m.name = ANY (ARRAY(SELECT name FROM step)) RETURNING 1)
SELECT (SELECT count(*) FROM step)::int AS examined, (SELECT max(name) FROM step) AS last, (SELECT count(*) FROM gone)::int AS counted`,
    ),
    countMarksStep: named(
      'count_marks_step',
      `SELECT count(*)::int AS examined, max(name) AS last, count(*)::int AS counted FROM (${step(q.marks, 'name', 'name')}) s`,
    ),
    // A scope has a few marks (one per topic partition its consumers read): one statement.
    countMarks: named('count_marks', `SELECT count(*)::int AS marks FROM ${q.marks} WHERE scope = $1`),
  };
}

/** The prefix of this store's list cursors (a version, should their form ever change). */
const CURSOR_PREFIX = 'p1.';

/** A list cursor: the last ID a page examined (the next page starts after it). */
export function encodeCursor(lastId: string): string {
  return CURSOR_PREFIX + Buffer.from(lastId, 'utf8').toString('base64url');
}

/** The ID a cursor of {@link encodeCursor} resumes after; `''` (the scope's start) without one. */
export function decodeCursor(cursor: string | undefined): string {
  if (cursor === undefined) return '';
  const body = cursor.startsWith(CURSOR_PREFIX) ? cursor.slice(CURSOR_PREFIX.length) : undefined;
  if (body !== undefined && body.length > 0 && /^[A-Za-z0-9_-]+$/.test(body)) {
    const id = Buffer.from(body, 'base64url').toString('utf8');
    // Only what encodeCursor makes: a storable ID whose encoding is exactly this body.
    if (id.length > 0 && !id.includes('\u0000') && encodeCursor(id) === cursor) return id;
  }
  throw new InvalidOptionsError('invalid admin list options: "cursor" is not a cursor this store handed out');
}

/** Decodes an admin record row. */
export function decodeAdminRow(row: AdminRow): AdminRecord {
  const state = STATES[row.state];
  if (state === undefined) throw new TypeError(`unexpected record state ${String(row.state)}`);
  const inProgress = state === 'in-progress';
  const extra = row.extra ?? undefined;
  return {
    state,
    token: toNumber(row.token),
    claimedAt: row.claimed_at,
    updatedAt: row.updated_at,
    ...(inProgress ? { leaseUntil: row.lease_until } : {}),
    leaseExpired: inProgress && row.lease_until <= row.read_at,
    ...(row.fingerprint === null ? {} : { fingerprint: row.fingerprint }),
    ...(extra === undefined ? {} : state === 'completed' ? { result: extra } : { error: extra }),
    suspect: row.suspect,
    expiresAt: row.expires_at,
    readAt: row.read_at,
  };
}

/**
 * {@link AdminStore} over the store's tables. `query` is the store's own statement runner, so admin
 * statements are prepared, fail and mark the store unreachable exactly as its other statements do.
 */
export class PostgresAdmin implements AdminStore {
  readonly #query: AdminQuery;
  readonly #statements: AdminStatements;

  constructor(query: AdminQuery, names: QualifiedNames) {
    this.#query = query;
    this.#statements = buildAdminStatements(names);
  }

  async inspect(scope: string, id: string): Promise<AdminRecord | undefined> {
    const rows = await this.#query<AdminRow>('inspect', this.#statements.inspect, [checkScope(scope), checkId(id)]);
    return rows[0] === undefined ? undefined : decode('inspect', () => decodeAdminRow(rows[0]!));
  }

  async list(scope: string, options?: AdminListOptions): Promise<AdminPage> {
    const { state, limit, cursor, batchSize } = parseAdminListOptions(options);
    checkScope(scope);
    let after = decodeCursor(cursor);
    const code = state === undefined ? null : STATE_CODES[state];
    const entries: AdminEntry[] = [];
    for (;;) {
      const wanted = limit - entries.length;
      // One more than fits on the page: tells whether this step holds more matches than the page takes.
      const rows = await this.#query<ListRow>('list', this.#statements.listStep, [scope, after, batchSize, code, wanted + 1]);
      const { examined, last } = rows[0] ?? { examined: 0, last: null };
      const found = rows.filter((row) => row.id !== null);
      for (const row of found.slice(0, wanted)) {
        entries.push({ id: row.id!, keyPart: row.id!, record: decode('list', () => decodeAdminRow(row as ListRow & AdminRow)) });
      }
      const exhausted = examined < batchSize || last === null;
      // More matches in this step than the page takes: the next page starts after the last entry.
      if (found.length > wanted) return { entries, cursor: encodeCursor(entries.at(-1)!.id!) };
      // Every match of the step is on the page: the next one starts after the step.
      if (exhausted) return { entries, cursor: undefined };
      after = last;
      if (entries.length === limit) return { entries, cursor: encodeCursor(after) };
    }
  }

  async purge(scope: string, id: string): Promise<boolean> {
    const rows = await this.#query<{ live: boolean }>('purge', this.#statements.purge, [checkScope(scope), checkId(id)]);
    return rows[0]?.live === true;
  }

  async purgeScope(scope: string, options?: AdminPurgeScopeOptions): Promise<AdminPurgeResult> {
    const { dryRun, includeMarks, batchSize, onProgress, signal } = parseAdminPurgeScopeOptions(options);
    checkScope(scope);
    const s = this.#statements;
    let records = 0;
    let marks = 0;
    const walk = async (operation: string, statement: Statement, extra: unknown[], add: (n: number) => void): Promise<boolean> => {
      let after = '';
      for (;;) {
        if (signal?.aborted) return false;
        const row = (await this.#query<StepRow>(operation, statement, [scope, after, batchSize, ...extra]))[0];
        add(row?.counted ?? 0);
        onProgress?.({ records, marks });
        if (row === undefined || row.last === null || row.examined < batchSize) return true;
        after = row.last;
      }
    };
    let done = await walk('purgeScope', s.purgeStep, [!dryRun], (n) => (records += n));
    if (done && includeMarks) {
      done = await walk('purgeScope', dryRun ? s.countMarksStep : s.purgeMarksStep, [], (n) => (marks += n));
    }
    return { records, marks, dryRun, aborted: !done };
  }

  async countByState(scope: string, options?: AdminCountOptions): Promise<AdminCounts> {
    const { batchSize } = parseAdminCountOptions(options);
    checkScope(scope);
    const totals = { 'in-progress': 0, completed: 0, failed: 0, released: 0, leaseExpired: 0, suspect: 0 };
    let after = '';
    for (;;) {
      const row = (await this.#query<CountRow>('countByState', this.#statements.countStep, [scope, after, batchSize]))[0];
      if (row === undefined) break;
      totals['in-progress'] += row.in_progress;
      totals.completed += row.completed;
      totals.failed += row.failed;
      totals.released += row.released;
      totals.leaseExpired += row.lease_expired;
      totals.suspect += row.suspect;
      if (row.last === null || row.examined < batchSize) break;
      after = row.last;
    }
    const marks = (await this.#query<{ marks: number }>('countByState', this.#statements.countMarks, [scope]))[0]?.marks ?? 0;
    const total = totals['in-progress'] + totals.completed + totals.failed + totals.released;
    return { ...totals, total, marks };
  }
}

/** Decodes a row; a row that cannot be decoded is store-unavailable, as in the rest of the store. */
function decode<T>(operation: string, run: () => T): T {
  try {
    return run();
  } catch (error) {
    throw storeUnavailable(operation, error);
  }
}
