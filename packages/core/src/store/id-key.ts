import * as nodeCrypto from 'node:crypto';

/**
 * The 128-bit key the memory store keeps instead of an ID string: SHA-256 of a secret per-store salt and
 * the ID, truncated to 128 bits.
 *
 * **Why a cryptographic hash.** IDs come from producers, and a collision makes one message skip as a
 * duplicate of another. A fast non-cryptographic hash can be made to collide on purpose; SHA-256 cannot.
 * **Why a salt.** Unsalted, a 128-bit truncation falls to a generic birthday search of about 2^64
 * hashes, which an attacker could run offline. With 108 random bits of salt that never leave the process
 * (keys are never returned, logged or counted anywhere), nobody can compute a key offline, so a
 * collision can only happen by chance. (A keyed SipHash-2-4 with 128-bit output, written in JavaScript,
 * was measured too: 283 ns a UUID against 305 ns for `crypto.hash` SHA-256 on Node 20, which uses the
 * CPU's SHA extensions. Not worth a hash whose 128-bit variant has had far less analysis.)
 *
 * **Odds.** For n records held in one scope, a claim of a new ID matches an existing key with
 * probability at most n / 2^128 (1 M: 2.9e-33; 10 M: 2.9e-32), and the chance that any two of n held IDs
 * share a key is at most n² / 2^129 (10 M: 1.5e-25). At 2 M claims a second for ten years (6.3e14
 * claims) against 10 M held records, the chance of a single false duplicate is below 2e-17.
 *
 * **Encoding.** Well-formed strings are hashed as UTF-8, which is one-to-one on them. A string with a
 * lone surrogate has no UTF-8 form (it would be replaced by U+FFFD and collide with others), so it is
 * hashed as its UTF-16 code units under a different tag: no two distinct strings share an input.
 */
export class IdKeyHasher {
  /** Salt and tag for well-formed IDs (hashed as UTF-8). */
  readonly #utf8: string;
  /** Salt and tag for IDs with lone surrogates (hashed as UTF-16 code units). */
  readonly #utf16: string;
  readonly #oneShot: boolean;

  /** `salt` and `oneShot` are for tests; by default a fresh random salt, and `crypto.hash` when Node has it. */
  constructor(options: { salt?: string; oneShot?: boolean } = {}) {
    // 18 base64url characters: 108 random bits. Salt, tag and a 36-character UUID make 55 bytes, the
    // most SHA-256 hashes in one block (a longer salt would double the work for the commonest IDs).
    const salt = options.salt ?? nodeCrypto.randomBytes(14).toString('base64url').slice(0, 18);
    if (!/^[\w-]+$/.test(salt)) throw new RangeError('IdKeyHasher salt must be base64url');
    this.#utf8 = `${salt}u`;
    this.#utf16 = `${salt}w`;
    this.#oneShot = (options.oneShot ?? true) && typeof nodeCrypto.hash === 'function';
  }

  /** Writes the 128-bit key of `id` into `out[0..3]`. */
  key(id: string, out: Int32Array): void {
    if (this.#oneShot && id.isWellFormed()) {
      // 'binary' (latin1): one character per digest byte, cheaper to read than a Buffer is to allocate.
      const d = nodeCrypto.hash('sha256', this.#utf8 + id, 'binary');
      out[0] = d.charCodeAt(0) | (d.charCodeAt(1) << 8) | (d.charCodeAt(2) << 16) | (d.charCodeAt(3) << 24);
      out[1] = d.charCodeAt(4) | (d.charCodeAt(5) << 8) | (d.charCodeAt(6) << 16) | (d.charCodeAt(7) << 24);
      out[2] = d.charCodeAt(8) | (d.charCodeAt(9) << 8) | (d.charCodeAt(10) << 16) | (d.charCodeAt(11) << 24);
      out[3] = d.charCodeAt(12) | (d.charCodeAt(13) << 8) | (d.charCodeAt(14) << 16) | (d.charCodeAt(15) << 24);
      return;
    }
    const hash = nodeCrypto.createHash('sha256');
    if (id.isWellFormed()) hash.update(this.#utf8 + id, 'utf8');
    else hash.update(this.#utf16, 'utf8').update(id, 'utf16le');
    const d = hash.digest();
    out[0] = d.readInt32LE(0);
    out[1] = d.readInt32LE(4);
    out[2] = d.readInt32LE(8);
    out[3] = d.readInt32LE(12);
  }
}
