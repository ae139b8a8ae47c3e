/**
 * Canonical JSON: object keys sorted by code unit, no whitespace, `undefined` object members dropped
 * (as JSON.stringify does). Two values that differ only in key order give the same text.
 * Values JSON cannot represent faithfully (functions, symbols, bigints, non-finite numbers, cycles)
 * throw a TypeError rather than being silently changed, because they would make different payloads
 * share an ID. `toJSON` is honoured (so Dates become ISO strings).
 */
export function canonicalJson(value: unknown): string {
  return write(value, new Set<object>(), '$');
}

function write(value: unknown, seen: Set<object>, path: string): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`${path} is ${value}, which JSON cannot represent`);
      return JSON.stringify(value);
    case 'object':
      break;
    default:
      throw new TypeError(`${path} is a ${typeof value}, which JSON cannot represent`);
  }
  const obj = value as object;
  if (typeof (obj as { toJSON?: unknown }).toJSON === 'function') {
    return write((obj as { toJSON(): unknown }).toJSON(), seen, path);
  }
  if (seen.has(obj)) throw new TypeError(`${path} is a circular reference`);
  seen.add(obj);
  let out: string;
  if (Array.isArray(obj)) {
    out = '[' + obj.map((item, i) => (item === undefined ? 'null' : write(item, seen, `${path}[${i}]`))).join(',') + ']';
  } else {
    const parts: string[] = [];
    for (const key of Object.keys(obj).sort()) {
      const member = (obj as Record<string, unknown>)[key];
      if (member === undefined) continue;
      parts.push(JSON.stringify(key) + ':' + write(member, seen, `${path}.${key}`));
    }
    out = '{' + parts.join(',') + '}';
  }
  seen.delete(obj);
  return out;
}
