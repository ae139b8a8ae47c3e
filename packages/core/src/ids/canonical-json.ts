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
  return write(value, new Set<object>(), []);
}

/**
 * `path` holds the steps from the root to `value` (member names, array indexes); it becomes text only
 * for an error message, so the common case builds no path strings.
 */
function write(value: unknown, seen: Set<object>, path: (string | number)[]): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`${pathText(path)} is ${value}, which JSON cannot represent`);
      return JSON.stringify(value);
    case 'object':
      break;
    default:
      throw new TypeError(`${pathText(path)} is a ${typeof value}, which JSON cannot represent`);
  }
  const obj = value as object;
  if (typeof (obj as { toJSON?: unknown }).toJSON === 'function') {
    return write((obj as { toJSON(): unknown }).toJSON(), seen, path);
  }
  if (seen.has(obj)) throw new TypeError(`${pathText(path)} is a circular reference`);
  const proto: unknown = Object.getPrototypeOf(obj);
  // Plain objects (the usual payload) skip the checks for special classes.
  const plain = proto === Object.prototype || proto === null;
  if (!plain) {
    if (ArrayBuffer.isView(obj) || obj instanceof ArrayBuffer) return bytes(obj);
    for (const type of LOSSY) {
      if (obj instanceof type) throw new TypeError(`${pathText(path)} is a ${type.name}, whose content JSON cannot represent`);
    }
  }
  seen.add(obj);
  let out: string;
  if (plain) {
    out = members(obj, seen, path);
  } else if (Array.isArray(obj)) {
    out = '[';
    for (let i = 0; i < obj.length; i++) {
      const item: unknown = obj[i];
      path.push(i);
      out += (i === 0 ? '' : ',') + (item === undefined ? 'null' : write(item, seen, path));
      path.pop();
    }
    out += ']';
  } else if (obj instanceof Map) {
    const entries: string[] = [];
    let i = 0;
    for (const [key, member] of obj) {
      path.push(`<key ${i}>`);
      const keyText = write(key, seen, path);
      path[path.length - 1] = `<value ${i}>`;
      entries.push(`[${keyText},${member === undefined ? 'null' : write(member, seen, path)}]`);
      path.pop();
      i++;
    }
    out = 'Map[' + entries.sort(byCodeUnit).join(',') + ']';
  } else if (obj instanceof Set) {
    const items: string[] = [];
    let i = 0;
    for (const item of obj) {
      path.push(`<item ${i++}>`);
      items.push(item === undefined ? 'null' : write(item, seen, path));
      path.pop();
    }
    out = 'Set[' + items.sort(byCodeUnit).join(',') + ']';
  } else {
    out = members(obj, seen, path); // a class instance: its own enumerable members, as JSON.stringify writes them
  }
  seen.delete(obj);
  return out;
}

/** `{"a":…,"b":…}`: own enumerable members in key order, `undefined` ones left out. */
function members(obj: object, seen: Set<object>, path: (string | number)[]): string {
  let out = '{';
  let first = true;
  for (const key of Object.keys(obj).sort()) {
    const member = (obj as Record<string, unknown>)[key];
    if (member === undefined) continue;
    path.push(key);
    out += (first ? '' : ',') + JSON.stringify(key) + ':' + write(member, seen, path);
    path.pop();
    first = false;
  }
  return out + '}';
}

/** `$.order.lines[2]`: member names as `.name`, array indexes as `[i]`. */
function pathText(path: readonly (string | number)[]): string {
  let text = '$';
  for (const step of path) text += typeof step === 'number' ? `[${step}]` : `.${step}`;
  return text;
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
