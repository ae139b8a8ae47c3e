/**
 * Every statement of the store, one per operation. A batch is one statement over arrays (`unnest`),
 * whatever its size and however many scopes it spans: one round trip.
 *
 * Record states (column `state`): 0 released, 1 in progress, 2 completed, 3 failed.
 */
import { createHash } from 'node:crypto';
import { interval, ms, NOW, open, SEED, type QualifiedNames } from './sql.js';

/** A statement and the name it is prepared under (per connection, when prepared statements are on). */
export interface Statement {
  readonly name: string;
  readonly text: string;
  /**
   * Planned at every call, never prepared: the statements that update a batch of records by joining
   * the requests to the table. A prepared statement keeps its generic plan until the next ANALYZE,
   * and one planned while the table was small hash-joins a full scan of it at every call (measured: a
   * batch completion of 10 went from 0.5 ms to 13 ms as a fresh table grew to 50 000 rows). Planning
   * costs about 0.1–0.2 ms a call; single-request forms (`claimOne`, `completeOne`) stay prepared,
   * since a primary-key lookup keeps its plan at any size.
   */
  readonly replan?: boolean;
}

/** What the claim statements answer per request (`kind`). */
export const ClaimKind = {
  /** Nobody could be sure of the record: a concurrent claim committed it after this statement began. Claim it again. */
  UNRESOLVED: 0,
  ACQUIRED: 1,
  IN_PROGRESS: 2,
  COMPLETED: 3,
  FAILED: 4,
  /** Inside the offset mark: not claimed. */
  MARKED: 5,
  /** The same (scope, id) as an earlier request of the batch (`lead`): answered as if claimed after it. */
  REPEATED: 6,
} as const;

export interface Statements {
  readonly claim: Statement;
  readonly claimMarked: Statement;
  /** The claim of one request, unmarked: the answer of `claim` for a batch of one, with a plan of a few nodes (see {@link claimOneText}). */
  readonly claimOne: Statement;
  readonly extend: Statement;
  readonly complete: Statement;
  /** The completion of one request: `complete`'s answer for a batch of one, by primary key. */
  readonly completeOne: Statement;
  /** The completion inside a handler's transaction: one row, fenced, and guarded (see {@link completeInTransactionText}). */
  readonly completeInTransaction: Statement;
  /** The completion sent in one round trip with the COMMIT on a pipelined client: fails the transaction when the fence fails (see {@link completeBeforeCommitText}). */
  readonly completeBeforeCommit: Statement;
  /** Marks the current transaction (`transaction` option), for the guard of `completeInTransaction`. */
  readonly markTransaction: Statement;
  readonly completeMarked: Statement;
  readonly release: Statement;
  readonly fail: Statement;
  readonly get: Statement;
  readonly getMark: Statement;
  readonly deleteMark: Statement;
  readonly prune: Statement;
}

const named = (operation: string, text: string, replan = false): Statement => ({
  // The hash ties a prepared statement to its exact text (table names included).
  name: `onceonly_${operation}_${createHash('sha256').update(text).digest('hex').slice(0, 12)}`,
  text,
  ...(replan ? { replan } : {}),
});

/**
 * How a claim takes a record it conflicts with, shared by the batch and the single claim: only when
 * the latest version of the row may be taken ({@link open}), with the next fencing token, and as a
 * takeover (`suspect`) when it takes an expired lease or a released record that was suspect.
 */
const CLAIM_CONFLICT = `ON CONFLICT (scope, id) DO UPDATE SET
    token = CASE WHEN r.expires_at > excluded.claimed_at THEN r.token + 1 ELSE greatest(r.token + 1, excluded.token) END,
    suspect = r.expires_at > excluded.claimed_at AND (r.state = 1 OR r.suspect),
    claimed_at = excluded.claimed_at, updated_at = excluded.updated_at,
    lease_until = excluded.lease_until, expires_at = excluded.expires_at,
    state = 1, fingerprint = excluded.fingerprint, result = NULL, error = NULL
  WHERE ${open('r', 'excluded.claimed_at')}`;

/** The answer columns of a claim after `kind` and `lead` (see rows.ts), from `c` (the row it wrote) or `p` (the record it found). */
const CLAIM_ANSWER = `COALESCE(c.token, p.token)::text AS token,
  c.suspect AS takeover,
  ${ms('COALESCE(c.claimed_at, p.claimed_at)')} AS claimed_at,
  ${ms('p.updated_at')} AS updated_at,
  ${ms('COALESCE(c.lease_until, p.lease_until)')} AS lease_until,
  p.fingerprint,
  CASE p.state WHEN 2 THEN p.result WHEN 3 THEN p.error END AS extra`;

/**
 * The claim of a batch, in one statement.
 *
 * 1. `input`: the requests, numbered (`ord`); in the marked form, those whose position lies inside the
 *    mark are `skipped`.
 * 2. `lead`: the first request of each (scope, id); a repeat is answered from it, as if claimed after it.
 * 3. `prior`: the records as this statement's snapshot sees them, and whether a claim may take them.
 *    A record that may not be taken (live lease, completed, failed) is answered from here, unwritten:
 *    a duplicate costs a read, no write and no lock. One primary-key lookup per request (`LATERAL …
 *    LIMIT 1`, which the planner cannot turn into a join): a prepared statement keeps its generic
 *    plan, and one planned while the table was small would otherwise hash-join a full scan of the
 *    table, at every claim, until the next ANALYZE.
 * 4. `claimed`: an upsert of the absent and takeable ones, in key order (so that two batches lock
 *    shared IDs in the same order and never deadlock). `ON CONFLICT … WHERE` judges the latest
 *    version of the row, whatever the snapshot saw, so two claims can never both win.
 * 5. An ID that the upsert found taken by a claim committed after the snapshot comes back
 *    `UNRESOLVED`: the store claims it again in a new statement (rare: a race on the same new ID).
 *
 * The new token is the old one + 1 (the fence), or the clock in µs for an ID with no live record. A
 * takeover (`suspect`) is a claim of an expired lease, or of a released record that was suspect.
 */
function claimText(q: QualifiedNames, marked: boolean): string {
  const now = NOW;
  const skipped = marked ? `COALESCE($6::boolean AND i.position BETWEEN m.low AND m.high, false)` : 'false';
  const markCte = marked ? `mark AS (SELECT low, high FROM ${q.marks} WHERE scope = $7 AND name = $8),\n` : '';
  const positions = marked ? ', $9::bigint[]' : '';
  const positionColumn = marked ? ', position' : '';
  const markJoin = marked ? ' LEFT JOIN mark m ON true' : '';
  const markColumns = marked ? ',\n  NULL::text AS mark_low, NULL::text AS mark_high' : '';
  const markRow = marked
    ? `\nUNION ALL
SELECT 0, ${ClaimKind.MARKED}, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, m.low::text, m.high::text
FROM (SELECT 1) AS one LEFT JOIN mark m ON true`
    : '';
  return `WITH ${markCte}input AS (
  SELECT i.*, ${skipped} AS skipped
  FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[]${positions})
    WITH ORDINALITY AS i(scope, id, lease_ms, window_ms, fingerprint${positionColumn}, ord)${markJoin}
),
lead AS (
  SELECT DISTINCT ON (scope, id) * FROM input WHERE NOT skipped ORDER BY scope, id, ord
),
prior AS (
  SELECT r.*, ${open('r', now)} AS open
  FROM lead l CROSS JOIN LATERAL (SELECT * FROM ${q.records} x WHERE x.scope = l.scope AND x.id = l.id LIMIT 1) r
),
claimed AS (
  INSERT INTO ${q.records} AS r (token, claimed_at, updated_at, lease_until, expires_at, state, suspect, scope, id, fingerprint)
  SELECT ${SEED}, ${now}, ${now}, ${now} + ${interval('l.lease_ms')}, ${now} + ${interval('greatest(l.window_ms, l.lease_ms)')},
    1, false, l.scope, l.id, l.fingerprint
  FROM lead l LEFT JOIN prior p ON p.scope = l.scope AND p.id = l.id
  WHERE p.open IS NOT FALSE
  ORDER BY l.scope, l.id
  ${CLAIM_CONFLICT}
  RETURNING r.scope, r.id, r.token, r.suspect, r.claimed_at, r.lease_until
)
SELECT i.ord::int AS ord,
  CASE WHEN i.skipped THEN ${ClaimKind.MARKED}
       WHEN l.ord <> i.ord THEN ${ClaimKind.REPEATED}
       WHEN c.id IS NOT NULL THEN ${ClaimKind.ACQUIRED}
       WHEN NOT p.open THEN p.state + 1
       ELSE ${ClaimKind.UNRESOLVED} END AS kind,
  l.ord::int AS lead,
  ${CLAIM_ANSWER}${markColumns}
FROM input i
LEFT JOIN lead l ON NOT i.skipped AND l.scope = i.scope AND l.id = i.id
LEFT JOIN claimed c ON c.scope = l.scope AND c.id = l.id
LEFT JOIN prior p ON p.scope = l.scope AND p.id = l.id${markRow}
ORDER BY ord`;
}

/**
 * The claim of a single request ($1 scope, $2 id, $3 lease, $4 window, $5 fingerprint): the same
 * rules and the same answer row as {@link claimText} for a batch of one, without the batch's
 * machinery (unnest, the repeats, hash joins over the requests), which costs a single claim several
 * times its work. A record that may not be taken is answered from `prior`, unwritten and unlocked.
 */
function claimOneText(q: QualifiedNames): string {
  const now = NOW;
  return `WITH prior AS (
  SELECT r.*, ${open('r', now)} AS open FROM ${q.records} r WHERE r.scope = $1::text AND r.id = $2::text
),
claimed AS (
  INSERT INTO ${q.records} AS r (token, claimed_at, updated_at, lease_until, expires_at, state, suspect, scope, id, fingerprint)
  SELECT ${SEED}, ${now}, ${now}, ${now} + ${interval('$3::bigint')}, ${now} + ${interval('greatest($4::bigint, $3::bigint)')},
    1, false, $1::text, $2::text, $5::text
  WHERE NOT EXISTS (SELECT 1 FROM prior WHERE NOT open)
  ${CLAIM_CONFLICT}
  RETURNING r.token, r.suspect, r.claimed_at, r.lease_until
)
SELECT 1 AS ord,
  CASE WHEN c.token IS NOT NULL THEN ${ClaimKind.ACQUIRED}
       WHEN NOT p.open THEN p.state + 1
       ELSE ${ClaimKind.UNRESOLVED} END AS kind,
  1 AS lead,
  ${CLAIM_ANSWER}
FROM (SELECT 1) AS one LEFT JOIN claimed c ON true LEFT JOIN prior p ON true`;
}

/**
 * The fenced completion of one request ($1 scope, $2 id, $3 token, $4 window, $5 result), by primary
 * key: shared by `completeOne`, `completeInTransaction` and `completeBeforeCommit`. `guard` is a
 * further condition, written before the others (`… AND `).
 */
const completeOneUpdate = (q: QualifiedNames, guard = ''): string => `UPDATE ${q.records} r
  SET state = 2, suspect = false, updated_at = ${NOW}, expires_at = ${NOW} + ${interval('$4::bigint')}, result = $5::text
  WHERE ${guard}r.scope = $1::text AND r.id = $2::text AND r.token = $3::bigint AND r.state = 1 AND r.expires_at > ${NOW}`;

/**
 * Completion of a batch. Requests are deduplicated on (scope, id, token): a record holds one token, so
 * each row is updated at most once, and a repeat of a completion is `lease-lost` (the record is no
 * longer in progress after the first), as it would be one call after the other. An owner whose lease
 * ran out but whose record nobody took since still completes; a record past its window does not.
 */
function completeText(q: QualifiedNames, marked: boolean): string {
  const update = `UPDATE ${q.records} r
  SET state = 2, suspect = false, updated_at = ${NOW}, expires_at = ${NOW} + ${interval('l.window_ms')}, result = l.result
  FROM lead l
  WHERE r.scope = l.scope AND r.id = l.id AND r.token = l.token AND r.state = 1 AND r.expires_at > ${NOW}
  RETURNING l.ord::int AS ord`;
  const head = `WITH input AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[])
    WITH ORDINALITY AS i(scope, id, token, window_ms, result, ord)
),
lead AS (
  SELECT DISTINCT ON (scope, id, token) * FROM input ORDER BY scope, id, token, ord
)`;
  if (!marked) return `${head}\n${update}`;
  // The mark moves only when every completion of the call succeeded ($11: the number of requests), by
  // the rule of advanceMark() in @onceonly/core, applied to the latest version of the mark's row.
  const touches = 'excluded.low <= m.high + 1 AND excluded.high >= m.low - 1';
  return `${head},
done AS (
  ${update}
),
mark AS (SELECT low, high FROM ${q.marks} WHERE scope = $6 AND name = $7),
advanced AS (
  INSERT INTO ${q.marks} AS m (scope, name, low, high, updated_at)
  SELECT $6, $7, $9::bigint, $10::bigint, ${NOW}
  WHERE $8::boolean AND (SELECT count(*) FROM done) = $11::int
  ON CONFLICT (scope, name) DO UPDATE SET
    low = CASE WHEN ${touches} THEN least(m.low, excluded.low) WHEN excluded.high < m.low THEN m.low ELSE excluded.low END,
    high = CASE WHEN ${touches} THEN greatest(m.high, excluded.high) WHEN excluded.high < m.low THEN m.high ELSE excluded.high END,
    updated_at = excluded.updated_at
  RETURNING low, high
)
SELECT ord, NULL::text AS mark_low, NULL::text AS mark_high FROM done
UNION ALL
SELECT 0, COALESCE(a.low, k.low)::text, COALESCE(a.high, k.high)::text
FROM (SELECT 1) AS one LEFT JOIN advanced a ON true LEFT JOIN mark k ON true`;
}

/** The transaction-local setting that marks a transaction opened through the `transaction` option. */
export const TRANSACTION_MARK = 'onceonly.transaction';

/**
 * The completion that ends a handler's transaction (`completeWithin`): one request, fenced like
 * `complete`, and, when `$6` is given, guarded: it writes only while the transaction-local setting
 * {@link TRANSACTION_MARK} still holds `$6`, as set at the start of the transaction (`markTransaction`).
 * Once the handler ended that transaction (or when the `transaction` option's `run` opened none), the
 * setting is gone and the statement changes nothing, rather than committing the completion without
 * the effect. Answers one row: `open` (the guard held) and `completed` (1, or 0 when the fence failed).
 */
function completeInTransactionText(q: QualifiedNames): string {
  return `WITH state AS (SELECT $6::text IS NULL OR current_setting('${TRANSACTION_MARK}', true) IS NOT DISTINCT FROM $6::text AS open),
done AS (
  ${completeOneUpdate(q, '(SELECT open FROM state) AND ')}
  RETURNING 1
)
SELECT (SELECT open FROM state) AS open, (SELECT count(*) FROM done)::int AS completed`;
}

/**
 * The fenced completion of one request that a pipelined client sends together with its `COMMIT`,
 * before hearing the answer: when the fence fails it must stop that COMMIT, so it fails the
 * transaction (division by zero, SQLSTATE {@link FENCE_FAILED}) and the COMMIT then rolls back. The
 * divisor is a subquery, so the planner cannot fold it into an error of every run.
 */
function completeBeforeCommitText(q: QualifiedNames): string {
  return `WITH done AS (
  ${completeOneUpdate(q)}
  RETURNING 1
)
SELECT 1 / (SELECT count(*) FROM done)::int AS completed`;
}

/** The SQLSTATE of `completeBeforeCommit` when the fence fails (division_by_zero). */
export const FENCE_FAILED = '22012';

export function buildStatements(q: QualifiedNames): Statements {
  return {
    claim: named('claim', claimText(q, false)),
    claimMarked: named('claim_marked', claimText(q, true)),
    claimOne: named('claim_one', claimOneText(q)),
    // A lease is never shortened, and the record is kept at least as long as its lease. Repeats of
    // one (scope, id, token) extend once, by the longest of their leases.
    extend: named(
      'extend',
      `WITH input AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
    WITH ORDINALITY AS i(scope, id, token, lease_ms, ord)
),
lead AS (
  SELECT scope, id, token, max(lease_ms) AS lease_ms FROM input GROUP BY scope, id, token
),
done AS (
  UPDATE ${q.records} r
  SET lease_until = greatest(r.lease_until, ${NOW} + ${interval('l.lease_ms')}),
      expires_at = greatest(r.expires_at, ${NOW} + ${interval('l.lease_ms')})
  FROM lead l
  WHERE r.scope = l.scope AND r.id = l.id AND r.token = l.token AND r.state = 1 AND r.expires_at > ${NOW}
  RETURNING r.scope, r.id, r.token
)
SELECT i.ord::int AS ord FROM input i JOIN done d ON d.scope = i.scope AND d.id = i.id AND d.token = i.token`,
      true,
    ),
    complete: named('complete', completeText(q, false), true),
    completeOne: named(
      'complete_one',
      `${completeOneUpdate(q)}
RETURNING 1 AS ord`,
    ),
    completeInTransaction: named('complete_in_transaction', completeInTransactionText(q)),
    completeBeforeCommit: named('complete_before_commit', completeBeforeCommitText(q)),
    // Set for the current transaction only (is_local): gone once it ends, whoever ends it.
    markTransaction: named('mark_transaction', `SELECT set_config('${TRANSACTION_MARK}', $1::text, true) AS mark`),
    completeMarked: named('complete_marked', completeText(q, true), true),
    // The record becomes a tombstone (state 0) that reads as absent and keeps its token, its suspect
    // flag and its expiry, so the next claim gets a higher token and, when suspect, is a takeover.
    release: named(
      'release',
      `WITH input AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY AS i(scope, id, token, ord)
),
lead AS (
  SELECT DISTINCT ON (scope, id, token) * FROM input ORDER BY scope, id, token, ord
)
UPDATE ${q.records} r SET state = 0
FROM lead l
WHERE r.scope = l.scope AND r.id = l.id AND r.token = l.token AND r.state = 1 AND r.expires_at > ${NOW}
RETURNING l.ord::int AS ord`,
      true,
    ),
    fail: named(
      'fail',
      `UPDATE ${q.records}
SET state = 3, suspect = false, updated_at = ${NOW}, expires_at = ${NOW} + ${interval('$4::bigint')}, error = $5
WHERE scope = $1 AND id = $2 AND token = $3 AND state = 1 AND expires_at > ${NOW}`,
    ),
    get: named(
      'get',
      `SELECT state, token::text AS token, ${ms('claimed_at')} AS claimed_at, ${ms('updated_at')} AS updated_at,
  ${ms('lease_until')} AS lease_until, fingerprint, CASE state WHEN 2 THEN result WHEN 3 THEN error END AS extra
FROM ${q.records}
WHERE scope = $1 AND id = $2 AND expires_at > ${NOW} AND (state IN (2, 3) OR (state = 1 AND lease_until > ${NOW}))`,
    ),
    getMark: named('get_mark', `SELECT low::text AS low, high::text AS high FROM ${q.marks} WHERE scope = $1 AND name = $2`),
    deleteMark: named('delete_mark', `DELETE FROM ${q.marks} WHERE scope = $1 AND name = $2`),
    // Locks what it deletes (SKIP LOCKED: rows a claim is working on wait for the next round), in
    // expiry order through the index, at most $1 rows per statement.
    prune: named(
      'prune',
      `WITH doomed AS (
  SELECT scope, id FROM ${q.records} WHERE expires_at <= ${NOW} ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED
)
DELETE FROM ${q.records} r USING doomed d WHERE r.scope = d.scope AND r.id = d.id`,
    ),
  };
}
