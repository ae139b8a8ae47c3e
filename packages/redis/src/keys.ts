import { createHash } from 'node:crypto';

/**
 * Key layout: `<prefix>:{<scope part>}:<id part>`.
 *
 * - The scope part is the Redis Cluster hash tag, so every ID of one scope lives in one hash slot:
 *   a batch script can touch many IDs of a scope at once, and one scope lives on one shard.
 * - Scope and ID parts are escaped injectively: characters outside `[A-Za-z0-9._~-]` become `%XX`
 *   (UTF-8 bytes; a lone surrogate as its WTF-8 bytes), so a part never holds `{`, `}`, `:`, `*` or
 *   whitespace and cannot escape its place in the key.
 * - A part whose escaped form is longer than {@link MAX_PART_LENGTH} becomes `#` + SHA-256 of the
 *   escaped form (base64url). `#` never appears in an escaped form (it would be `%23`), so hashed and
 *   escaped parts never collide, and every key stays short whatever the ID.
 */

/** Longest escaped scope or ID part kept as is; longer ones are hashed (44 characters). */
export const MAX_PART_LENGTH = 128;

/** Marks a hashed part. Never produced by the escaping. */
export const HASHED_MARKER = '#';

// Characters kept as they are. Everything else is percent-encoded.
const PLAIN = /^[A-Za-z0-9._~-]*$/;
// encodeURIComponent leaves these five unescaped; the key alphabet does not.
const URI_EXTRAS = /[!'()*]/g;
const escapeExtra = (c: string): string => `%${c.charCodeAt(0).toString(16).toUpperCase()}`;

/**
 * Escapes one scope or ID part, hashing it when the escaped form is too long.
 * @example
 * encodeKeyPart('0192f1a2-7b3c-7d4e-8f00-123456789abc'); // unchanged
 * encodeKeyPart('orders/3:{x}');                         // 'orders%2F3%3A%7Bx%7D'
 * encodeKeyPart('x'.repeat(500));                        // '#' + 43 characters of SHA-256, base64url
 */
export function encodeKeyPart(value: string): string {
  // Most IDs (UUIDs, numbers, topic/partition/offset with dots or dashes) take the fast path.
  const escaped = PLAIN.test(value) ? value : percentEncode(value);
  if (escaped.length <= MAX_PART_LENGTH) return escaped;
  return HASHED_MARKER + createHash('sha256').update(escaped).digest('base64url');
}

function percentEncode(value: string): string {
  let encoded: string;
  try {
    encoded = encodeURIComponent(value);
  } catch {
    // A lone surrogate (URIError): validateId rejects those, but the key space must stay injective
    // for any string the store is handed.
    return wtf8PercentEncode(value);
  }
  return encoded.replace(URI_EXTRAS, escapeExtra);
}

/** Percent-encodes the WTF-8 bytes of `value`: UTF-8, with lone surrogates as their 3-byte form. */
function wtf8PercentEncode(value: string): string {
  let out = '';
  for (const char of value) {
    // for..of yields whole code points, and a lone surrogate as itself.
    const cp = char.codePointAt(0)!;
    if (cp < 0x80) {
      out += PLAIN.test(char) ? char : byte(cp);
    } else if (cp < 0x800) {
      out += byte(0xc0 | (cp >> 6)) + byte(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += byte(0xe0 | (cp >> 12)) + byte(0x80 | ((cp >> 6) & 0x3f)) + byte(0x80 | (cp & 0x3f));
    } else {
      out +=
        byte(0xf0 | (cp >> 18)) +
        byte(0x80 | ((cp >> 12) & 0x3f)) +
        byte(0x80 | ((cp >> 6) & 0x3f)) +
        byte(0x80 | (cp & 0x3f));
    }
  }
  return out;
}

const byte = (b: number): string => `%${b.toString(16).toUpperCase().padStart(2, '0')}`;

/**
 * The ID (or scope) an escaped key part stands for: the inverse of {@link encodeKeyPart}, lone
 * surrogates included. `undefined` for a hashed part (`#…`: a hash cannot be undone) and for anything
 * {@link encodeKeyPart} would not have produced, so a decoded part always encodes back to itself.
 * @example
 * decodeKeyPart('orders%2F3%3A%7Bx%7D'); // 'orders/3:{x}'
 * decodeKeyPart(encodeKeyPart('x'.repeat(500))); // undefined: hashed
 */
export function decodeKeyPart(part: string): string | undefined {
  if (part.length === 0 || part.length > MAX_PART_LENGTH || part.startsWith(HASHED_MARKER)) return undefined;
  if (PLAIN.test(part)) return part;
  const bytes: number[] = [];
  for (let i = 0; i < part.length; i++) {
    const c = part.charCodeAt(i);
    if (c === 0x25 /* % */) {
      const hex = part.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) return undefined;
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(c);
    }
  }
  const decoded = wtf8Decode(bytes);
  // The encoding is canonical (one form per ID): anything else is not one of our key parts.
  return decoded !== undefined && encodeKeyPart(decoded) === part ? decoded : undefined;
}

/** Decodes WTF-8 (UTF-8 that also carries lone surrogates as 3-byte sequences); undefined when malformed. */
function wtf8Decode(bytes: readonly number[]): string | undefined {
  let out = '';
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i]!;
    let cp: number;
    let size: number;
    if (b < 0x80) [cp, size] = [b, 1];
    else if (b >= 0xc2 && b < 0xe0) [cp, size] = [b & 0x1f, 2];
    else if (b >= 0xe0 && b < 0xf0) [cp, size] = [b & 0x0f, 3];
    else if (b >= 0xf0 && b < 0xf5) [cp, size] = [b & 0x07, 4];
    else return undefined;
    if (i + size > bytes.length) return undefined;
    for (let k = 1; k < size; k++) {
      const next = bytes[i + k]!;
      if ((next & 0xc0) !== 0x80) return undefined;
      cp = (cp << 6) | (next & 0x3f);
    }
    // Overlong forms and values past U+10FFFF never come out of the encoder.
    if ((size === 3 && cp < 0x800) || (size === 4 && (cp < 0x10000 || cp > 0x10ffff))) return undefined;
    out += String.fromCodePoint(cp);
    i += size;
  }
  return out;
}

/** The key part of a scope's epoch key (see {@link KeyBuilder.epochKey}). */
export const EPOCH_PART = '!epoch';

/** Longest accepted key prefix. With two parts of at most 128 characters, keys stay under 330 bytes. */
export const MAX_PREFIX_LENGTH = 64;

/**
 * Why a prefix is unusable, or undefined when it is fine. A prefix is 1–64 printable ASCII characters
 * without braces (they would move the cluster hash tag) and without glob characters `*?[]\` (so that
 * `SCAN MATCH <prefix>:*` selects exactly this store's keys).
 */
export function prefixProblem(prefix: string): string | undefined {
  if (prefix.length === 0) return 'must not be empty';
  if (prefix.length > MAX_PREFIX_LENGTH) return `must be at most ${MAX_PREFIX_LENGTH} characters`;
  if (!/^[\x21-\x7e]+$/.test(prefix)) return 'must be printable ASCII without spaces';
  if (/[{}]/.test(prefix)) return 'must not contain "{" or "}" (they would change the cluster hash slot)';
  if (/[*?[\]\\]/.test(prefix)) return 'must not contain glob characters *?[]\\';
  return undefined;
}

/**
 * Builds record keys. The encoded `<prefix>:{<scope>}:` head of recent scopes is cached: a store sees
 * few scopes and many IDs.
 */
export class KeyBuilder {
  readonly #prefix: string;
  readonly #heads = new Map<string, string>();

  constructor(prefix: string) {
    this.#prefix = prefix;
  }

  /** The key of (scope, id). */
  key(scope: string, id: string): string {
    return this.head(scope) + encodeKeyPart(id);
  }

  /** `<prefix>:{<scope part>}:`, the part shared by every key of a scope. */
  head(scope: string): string {
    let head = this.#heads.get(scope);
    if (head === undefined) {
      head = `${this.#prefix}:{${encodeKeyPart(scope)}}:`;
      // Bounded: a caller with unbounded scope names must not grow this without limit.
      if (this.#heads.size >= 256) this.#heads.clear();
      this.#heads.set(scope, head);
    }
    return head;
  }

  /**
   * The key of an offset high-water mark: `<prefix>:{<scope part>}:hwm:<name part>`, in the scope's hash
   * slot. An escaped ID part never holds `:`, so no record key can take this form.
   */
  markKey(scope: string, name: string): string {
    return `${this.head(scope)}hwm:${encodeKeyPart(name)}`;
  }

  /**
   * The key of a scope's epoch: `<prefix>:{<scope part>}:!epoch`, in the scope's hash slot. `!` never
   * starts a key part (it is escaped as `%21`, and hashed parts start with `#`), so no record or mark
   * key can take this form.
   */
  epochKey(scope: string): string {
    return `${this.head(scope)}${EPOCH_PART}`;
  }

  /** `SCAN MATCH` pattern for every key of this prefix (all scopes). */
  get pattern(): string {
    return `${this.#prefix}:*`;
  }
}
