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

  /** `SCAN MATCH` pattern for every key of this prefix (all scopes). */
  get pattern(): string {
    return `${this.#prefix}:*`;
  }
}
