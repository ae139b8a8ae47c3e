import type { AdminCounts, AdminEntry, AdminRecord } from '@onceonly/core';

// Whitespace, quotes, backslashes and every "other" character (controls, format characters such as
// bidi overrides, lone surrogates, private use, unassigned): a value with any of them is quoted.
const NEEDS_QUOTES = /[\s"'\\\p{C}]/u;
// What JSON.stringify leaves unescaped but a terminal must not receive raw.
const RAW_IN_JSON = /[\p{C}\p{Zl}\p{Zp}\u0085\u00a0]/gu;

/**
 * A value as it is safe to print to a terminal: as is when it is plain, else as a JSON string literal
 * with every control or invisible character escaped, so an ID can neither hide nor move the cursor
 * (no terminal escape sequences, no bidi tricks), and can be pasted back with `--id-json`.
 * @example
 * display('order-42');   // order-42
 * display('a\nb');       // "a\nb"
 * display('a\u202eb');   // "a\u202eb"
 */
export function display(value: string): string {
  if (value.length > 0 && !NEEDS_QUOTES.test(value)) return value;
  return JSON.stringify(value).replace(RAW_IN_JSON, (c) => [...c].map(escapeUnit).join(''));
}

function escapeUnit(char: string): string {
  let out = '';
  for (let i = 0; i < char.length; i++) out += `\\u${char.charCodeAt(i).toString(16).padStart(4, '0')}`;
  return out;
}

/** `display`, cut to `max` characters with a note, for long values (results) in human output. */
export function displayShort(value: string, max = 120): string {
  const shown = display(value);
  if (shown.length <= max) return shown;
  return `${shown.slice(0, max)}… (${value.length} characters; --json shows all)`;
}

/** Rows as columns padded to their widest cell, two spaces apart; the last column is not padded. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, width(cell))));
  return rows
    .map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell + ' '.repeat(widths[i]! - width(cell)))).join('  '))
    .join('\n');
}

// Code points, not UTF-16 units: close enough for alignment (wide characters may still shift a column).
const width = (s: string): number => [...s].length;

/** An instant as ISO 8601 (UTC). */
export const isoTime = (ms: number): string => new Date(ms).toISOString();

/** A duration for people: `23h59m`, `4m05s`, `12s`, `850ms`; negative ones as `-…` (in the past). */
export function duration(ms: number): string {
  if (ms < 0) return `-${duration(-ms)}`;
  if (ms < 1_000) return `${Math.round(ms)}ms`;
  const s = Math.floor(ms / 1_000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`;
}

/** Short notes on a record: `suspect`, `lease-expired`. */
export function flags(record: AdminRecord): string {
  const notes: string[] = [];
  if (record.leaseExpired) notes.push('lease-expired');
  if (record.suspect) notes.push('suspect');
  return notes.join(',');
}

/**
 * The key/value lines of `inspect`. `where` says where the record lives: its Redis `key`, or the
 * PostgreSQL `table` whose row (scope, id) holds it.
 */
export function recordLines(scope: string, id: string, where: { key: string | null; table: string | null }, record: AdminRecord): string[][] {
  const rows: string[][] = [
    ['scope', display(scope)],
    ['id', display(id)],
  ];
  if (where.key !== null) rows.push(['key', display(where.key)]);
  if (where.table !== null) rows.push(['table', display(where.table)]);
  rows.push(['state', record.state], ['token', String(record.token)], ['claimed', isoTime(record.claimedAt)], ['updated', isoTime(record.updatedAt)]);
  if (record.leaseUntil !== undefined) {
    rows.push(['lease until', `${isoTime(record.leaseUntil)} (${record.leaseExpired ? `expired ${duration(record.readAt - record.leaseUntil)} ago` : `in ${duration(record.leaseUntil - record.readAt)}`})`]);
  }
  rows.push(['suspect', record.suspect ? 'yes (the next claim is a takeover)' : 'no']);
  if (record.fingerprint !== undefined) rows.push(['fingerprint', displayShort(record.fingerprint)]);
  if (record.result !== undefined) rows.push(['result', displayShort(record.result)]);
  if (record.error !== undefined) rows.push(['error', displayShort(record.error)]);
  rows.push(['expires', record.expiresAt === undefined ? 'never' : `${isoTime(record.expiresAt)} (in ${duration(record.expiresAt - record.readAt)})`]);
  return rows;
}

/** The table of `list`: one row per entry under a header. */
export function entryRows(entries: readonly AdminEntry[]): string[][] {
  const rows = [['ID', 'STATE', 'UPDATED', 'EXPIRES IN', 'FLAGS']];
  for (const { id, keyPart, record } of entries) {
    rows.push([
      id === undefined ? `(hashed) ${keyPart}` : display(id),
      record.state,
      isoTime(record.updatedAt),
      record.expiresAt === undefined ? 'never' : duration(record.expiresAt - record.readAt),
      flags(record) || '-',
    ]);
  }
  return rows;
}

/** The table of `stats`. */
export function countRows(counts: AdminCounts): string[][] {
  return [
    ['STATE', 'RECORDS'],
    ['in-progress', String(counts['in-progress'])],
    ['  lease expired', String(counts.leaseExpired)],
    ['completed', String(counts.completed)],
    ['failed', String(counts.failed)],
    ['released', String(counts.released)],
    ['total', String(counts.total)],
    ['suspect', String(counts.suspect)],
    ['marks', String(counts.marks)],
  ];
}

/** A list entry as JSON: `id` is null when the store hashed it (then `hashed` is true). */
export function entryJson(entry: AdminEntry): Record<string, unknown> {
  return { id: entry.id ?? null, keyPart: entry.keyPart, hashed: entry.id === undefined, record: entry.record };
}
