/**
 * Canonical JSON: object keys sorted by code unit, no whitespace, `undefined` object members dropped
 * (as JSON.stringify does). Two values that differ only in key order give the same text.
 * Values JSON cannot represent faithfully (functions, symbols, bigints, non-finite numbers, cycles,
 * and objects whose state JSON.stringify would drop: RegExp, Promise, WeakMap, WeakSet, Error) throw a
 * TypeError rather than being silently changed, because they would make different payloads share an
 * ID. `toJSON` is honoured (so Dates become ISO strings).
 *
 * Beyond JSON: a `Map` is written `Map[[key,value],…]` and a `Set` `Set[item,…]`, entries ordered by
 * their canonical text (insertion order does not matter), and a typed array or ArrayBuffer as
 * `Uint8Array"<base64>"` (its type name and bytes). No JSON text can equal these forms, so such a
 * payload never shares a fingerprint or content ID with a plain object or array.
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
  if (ArrayBuffer.isView(obj) || obj instanceof ArrayBuffer) return bytes(obj);
  const lossy = LOSSY.find((type) => obj instanceof type);
  if (lossy) throw new TypeError(`${path} is a ${lossy.name}, whose content JSON cannot represent`);
  seen.add(obj);
  let out: string;
  if (obj instanceof Map) {
    const entries = [...obj].map(([key, member], i) => `[${write(key, seen, `${path}.<key ${i}>`)},${member === undefined ? 'null' : write(member, seen, `${path}.<value ${i}>`)}]`);
    out = 'Map[' + entries.sort(byCodeUnit).join(',') + ']';
  } else if (obj instanceof Set) {
    out = 'Set[' + [...obj].map((item, i) => (item === undefined ? 'null' : write(item, seen, `${path}.<item ${i}>`))).sort(byCodeUnit).join(',') + ']';
  } else if (Array.isArray(obj)) {
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

// Objects whose state lives outside their enumerable properties: JSON.stringify would write `{}`.
const LOSSY: readonly (abstract new (...args: never[]) => object)[] = [RegExp, Promise, WeakMap, WeakSet, Error];

function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function bytes(view: ArrayBufferView | ArrayBuffer): string {
  const buffer = view instanceof ArrayBuffer ? Buffer.from(view) : Buffer.from(view.buffer, view.byteOffset, view.byteLength);
  return `${view.constructor.name}${JSON.stringify(buffer.toString('base64'))}`;
}
