/**
 * Field codecs of the memory store's compact records.
 *
 * Fingerprints: a fingerprint of 22 base64url characters (what `fingerprintOf` makes: 132 bits) packs
 * into four 32-bit words and a 4-bit tail, and back, exactly: any 22-character base64url string
 * round-trips, so the memory store keeps its own fingerprints in 17 bytes instead of a string. Other
 * fingerprints (user functions may return any text) are kept as strings.
 */

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) VALUE[ALPHABET.charCodeAt(i)] = i;
const CODES = Array.from(ALPHABET, (c) => c.charCodeAt(0));

export const PACKED_FINGERPRINT_LENGTH = 22;

function valueAt(text: string, i: number): number {
  const c = text.charCodeAt(i);
  return c < 128 ? VALUE[c]! : -1;
}

/** Five base64url digits (30 bits) of `text` from `at`, or -1 when one is not base64url. */
function five(text: string, at: number): number {
  const a = valueAt(text, at);
  const b = valueAt(text, at + 1);
  const c = valueAt(text, at + 2);
  const d = valueAt(text, at + 3);
  const e = valueAt(text, at + 4);
  if ((a | b | c | d | e) < 0) return -1;
  return (a << 24) | (b << 18) | (c << 12) | (d << 6) | e;
}

/**
 * Writes `fingerprint` into `words[at..at+3]` and `tails[index]` when it is 22 base64url characters;
 * answers false (and writes nothing) otherwise.
 * Layout: word k holds digits 5k..5k+4 in its low 30 bits; digits 20 and 21 (12 bits) are split into
 * the top 2 bits of each word (8 bits) and the tail (4 bits).
 */
export function packFingerprint(fingerprint: string, words: Int32Array, at: number, tails: Uint8Array, index: number): boolean {
  if (fingerprint.length !== PACKED_FINGERPRINT_LENGTH) return false;
  const w0 = five(fingerprint, 0);
  const w1 = five(fingerprint, 5);
  const w2 = five(fingerprint, 10);
  const w3 = five(fingerprint, 15);
  const d20 = valueAt(fingerprint, 20);
  const d21 = valueAt(fingerprint, 21);
  if ((w0 | w1 | w2 | w3 | d20 | d21) < 0) return false;
  const rest = (d20 << 6) | d21;
  words[at] = w0 | ((rest & 3) << 30);
  words[at + 1] = w1 | (((rest >>> 2) & 3) << 30);
  words[at + 2] = w2 | (((rest >>> 4) & 3) << 30);
  words[at + 3] = w3 | (((rest >>> 6) & 3) << 30);
  tails[index] = rest >>> 8;
  return true;
}

const scratch: number[] = new Array<number>(PACKED_FINGERPRINT_LENGTH).fill(0);

/** The fingerprint {@link packFingerprint} wrote at `words[at..]` and `tails[index]`. */
export function unpackFingerprint(words: Int32Array, at: number, tails: Uint8Array, index: number): string {
  let rest = tails[index]! << 8;
  for (let k = 0; k < 4; k++) {
    const w = words[at + k]!;
    rest |= ((w >>> 30) & 3) << (2 * k);
    const o = 5 * k;
    scratch[o] = CODES[(w >>> 24) & 63]!;
    scratch[o + 1] = CODES[(w >>> 18) & 63]!;
    scratch[o + 2] = CODES[(w >>> 12) & 63]!;
    scratch[o + 3] = CODES[(w >>> 6) & 63]!;
    scratch[o + 4] = CODES[w & 63]!;
  }
  scratch[20] = CODES[rest >>> 6]!;
  scratch[21] = CODES[rest & 63]!;
  return String.fromCharCode(...scratch);
}

/**
 * Fencing tokens are safe integers (below 2^53): the record keeps the low 32 bits in one word and the
 * high 21 bits in the low bits of another.
 */
export const TOKEN_HIGH_BITS = 21;
const TOKEN_SPLIT = 0x1_0000_0000;

/** The low 32 bits of `token`, as an int32. */
export function tokenLow(token: number): number {
  return token | 0;
}

/** The high 21 bits of `token`. */
export function tokenHigh(token: number): number {
  return Math.floor(token / TOKEN_SPLIT);
}

/** The token from its two parts (`high` may carry other bits above bit 20: they are ignored). */
export function joinToken(high: number, low: number): number {
  return (high & 0x1f_ffff) * TOKEN_SPLIT + (low >>> 0);
}
