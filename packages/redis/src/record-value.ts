/**
 * The value of a record key, as the scripts write it (`./scripts/includes/record.lua` is the
 * reference; this is its TypeScript side). A record is one Redis string:
 *
 * - **compact form**: a header byte (`64 + state + 4·suspect + 8·fingerprint + 16·packed + 32·tail`),
 *   the fencing token in 7 bytes, then zigzag varints: claimedAt − ⌊token / 1000⌋, updatedAt −
 *   claimedAt, and (tombstone, in progress) leaseUntil − claimedAt; then the fingerprint (17 packed
 *   bytes, or a varint length and UTF-8), then the result or error code (the rest of the value).
 * - **integer form**: a completed record without fingerprint or result, claimed once and finished
 *   within 999 ms, is the decimal `token · 1000 + (updatedAt − claimedAt)`, which Redis keeps as an
 *   integer inside the key's object.
 *
 * A fingerprint of 22 base64url characters (what the processor's `'auto'` fingerprints are: 132 bits)
 * is packed into 17 bytes at the store boundary and unpacked on the way back, exactly, so the
 * processor compares the same strings it gave. Times are ms of the Redis server clock.
 */

/** 0 released or expired (a tombstone that keeps the token), 1 in progress, 2 completed, 3 failed. */
export type StoredState = 0 | 1 | 2 | 3;

/** A record as stored: every field the value holds. */
export interface StoredRecord {
  readonly state: StoredState;
  /** An owner may have run the handler (the claim was a takeover): kept until completed or failed. */
  readonly suspect: boolean;
  readonly token: number;
  readonly claimedAt: number;
  readonly updatedAt: number;
  /** Tombstone and in progress only. */
  readonly leaseUntil?: number;
  readonly fingerprint?: string;
  /** The result (completed) or error code (failed), when recorded. */
  readonly extra?: string;
}

/** Thrown for a value that is not a record of this layout. */
export class MalformedRecordError extends Error {
  override readonly name = 'MalformedRecordError';
}

const HEADER = 64;
const SUSPECT = 4;
const FINGERPRINT = 8;
const PACKED = 16;
const TAIL = 32;
const PACKED_BYTES = 17;
const PACKABLE = /^[A-Za-z0-9_-]{22}$/;

/**
 * A claim's fingerprint as the scripts take it: '' when none, else a flag byte (8, or 24 when packed)
 * and the stored bytes (17 packed bytes, or a varint length and the UTF-8 bytes).
 */
export function encodeFingerprint(fingerprint: string | undefined): Buffer | '' {
  if (fingerprint === undefined) return '';
  if (PACKABLE.test(fingerprint)) {
    const packed = Buffer.allocUnsafe(1 + PACKED_BYTES);
    writePacked(packed, 0, fingerprint);
    return packed;
  }
  const bytes = Buffer.from(fingerprint, 'utf8');
  return Buffer.concat([Buffer.of(FINGERPRINT), varint(bytes.length), bytes]);
}

/** Writes a packable fingerprint's encoding (flag byte, then the 17 packed bytes) into `out` at `at`. */
function writePacked(out: Buffer, at: number, fingerprint: string): void {
  out[at] = FINGERPRINT | PACKED;
  // 23 base64url characters are 138 bits: 17 bytes hold the fingerprint's 132 and 4 zero bits.
  out.write(`${fingerprint}A`, at + 1, PACKED_BYTES, 'base64url');
}

/**
 * The fingerprints of a batch claim's records as one script argument: per record, in order, one zero
 * byte when it has none, else its {@link encodeFingerprint} bytes (flag byte first, so the script finds
 * each one's length). '' when no record has one. One argument for the whole batch, not one per record:
 * a Buffer argument makes the client build the whole command as bytes, several times the cost of text.
 * @throws {TypeError} for a fingerprint that is not a string.
 */
export function encodeFingerprints(count: number, fingerprintOf: (i: number) => unknown): Buffer | '' {
  let bytes = 0;
  let any = false;
  for (let i = 0; i < count; i++) {
    const fingerprint = fingerprintOf(i);
    if (fingerprint === undefined) {
      bytes += 1;
      continue;
    }
    if (typeof fingerprint !== 'string') throw new TypeError('RedisStore: a fingerprint must be a string');
    any = true;
    bytes += PACKABLE.test(fingerprint) ? 1 + PACKED_BYTES : encodeFingerprint(fingerprint).length;
  }
  if (!any) return '';
  const out = Buffer.allocUnsafe(bytes);
  let at = 0;
  for (let i = 0; i < count; i++) {
    const fingerprint = fingerprintOf(i) as string | undefined;
    if (fingerprint === undefined) {
      out[at++] = 0;
    } else if (PACKABLE.test(fingerprint)) {
      writePacked(out, at, fingerprint);
      at += 1 + PACKED_BYTES;
    } else {
      const encoded = encodeFingerprint(fingerprint) as Buffer;
      encoded.copy(out, at);
      at += encoded.length;
    }
  }
  return out;
}

/**
 * Decodes a record value.
 * @throws {MalformedRecordError} when `value` is not one.
 */
export function decodeRecordValue(value: Buffer): StoredRecord {
  const header = value[0];
  if (header === undefined) throw new MalformedRecordError('an empty value is not a record');
  if (header < HEADER) return decodeInteger(value);
  if (header >= 128 || value.length < 10) throw new MalformedRecordError('a value is not a record');
  const state = (header & 3) as StoredState;
  const token = value.readUIntBE(1, 6) * 256 + value[7]!;
  let at = 8;
  const read = (): number => {
    const [n, next] = readVarint(value, at);
    at = next;
    return n;
  };
  const claimedAt = Math.floor(token / 1000) + read();
  const updatedAt = claimedAt + read();
  const leaseUntil = state <= 1 ? claimedAt + read() : undefined;
  let fingerprint: string | undefined;
  const flags = header & (FINGERPRINT | PACKED);
  if (flags === (FINGERPRINT | PACKED)) {
    if (at + PACKED_BYTES > value.length) throw new MalformedRecordError('a record value is truncated');
    fingerprint = value.toString('base64url', at, at + PACKED_BYTES).slice(0, 22);
    at += PACKED_BYTES;
  } else if (flags === FINGERPRINT) {
    const length = read();
    if (length < 0 || at + length > value.length) throw new MalformedRecordError('a record value is truncated');
    fingerprint = value.toString('utf8', at, at + length);
    at += length;
  } else if (flags !== 0) {
    throw new MalformedRecordError('a value is not a record');
  }
  let extra: string | undefined;
  if (header & TAIL) extra = value.toString('utf8', at);
  else if (at !== value.length) throw new MalformedRecordError('a value is not a record');
  return {
    state,
    suspect: (header & SUSPECT) !== 0,
    token,
    claimedAt,
    updatedAt,
    ...(leaseUntil === undefined ? {} : { leaseUntil }),
    ...(fingerprint === undefined ? {} : { fingerprint }),
    ...(extra === undefined ? {} : { extra }),
  };
}

/**
 * Encodes a record exactly as the scripts do (the inverse of {@link decodeRecordValue}). The store
 * never writes values itself; this serves tests and tools.
 */
export function encodeRecordValue(record: StoredRecord): Buffer {
  const { state, token, claimedAt, updatedAt } = record;
  const base = Math.floor(token / 1000);
  const fingerprint = encodeFingerprint(record.fingerprint);
  if (state === 2 && fingerprint === '' && record.extra === undefined && claimedAt === base && updatedAt >= claimedAt && updatedAt - claimedAt <= 999) {
    return Buffer.from(`${token}${String(updatedAt - claimedAt).padStart(3, '0')}`, 'latin1');
  }
  const header = HEADER + state + (record.suspect ? SUSPECT : 0) + (fingerprint === '' ? 0 : fingerprint[0]!) + (record.extra === undefined ? 0 : TAIL);
  const head = Buffer.alloc(8);
  head[0] = header;
  head.writeUIntBE(Math.floor(token / 256), 1, 6);
  head[7] = token % 256;
  const parts = [head, varint(claimedAt - base), varint(updatedAt - claimedAt)];
  if (state <= 1) parts.push(varint((record.leaseUntil ?? claimedAt) - claimedAt));
  if (fingerprint !== '') parts.push(fingerprint.subarray(1));
  if (record.extra !== undefined) parts.push(Buffer.from(record.extra, 'utf8'));
  return Buffer.concat(parts);
}

function decodeInteger(value: Buffer): StoredRecord {
  const text = value.toString('latin1');
  if (!/^[1-9]\d{3,}$/.test(text)) throw new MalformedRecordError('a value is not a record');
  const token = Number(text.slice(0, -3));
  const claimedAt = Math.floor(token / 1000);
  return { state: 2, suspect: false, token, claimedAt, updatedAt: claimedAt + Number(text.slice(-3)) };
}

/** Zigzag LEB128 of a safe integer. */
function varint(n: number): Buffer {
  let z = n >= 0 ? n * 2 : -n * 2 - 1;
  const bytes: number[] = [];
  while (z >= 128) {
    bytes.push((z % 128) + 128);
    z = Math.floor(z / 128);
  }
  bytes.push(z);
  return Buffer.from(bytes);
}

function readVarint(value: Buffer, from: number): [number, number] {
  let z = 0;
  let scale = 1;
  for (let at = from; ; at++) {
    const b = value[at];
    if (b === undefined || scale > 2 ** 56) throw new MalformedRecordError('a record value is truncated');
    if (b < 128) {
      z += b * scale;
      return [z % 2 === 0 ? z / 2 : -(z + 1) / 2, at + 1];
    }
    z += (b - 128) * scale;
    scale *= 128;
  }
}
