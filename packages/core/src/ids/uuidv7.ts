import { randomFillSync } from 'node:crypto';

// Random bytes are drawn in blocks: one syscall-backed fill per 256 IDs instead of one per ID.
const POOL_IDS = 256;
const pool = new Uint8Array(POOL_IDS * 10);
let poolOffset = pool.length;

let lastMs = -1;
let sequence = 0;

const HEX_CODES = Buffer.from('0123456789abcdef', 'latin1');
const bytes = new Uint8Array(16);
const text = Buffer.alloc(36);

/**
 * A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then randomness. IDs made in one process are strictly
 * increasing: within one millisecond a 12-bit counter (seeded at random) takes the `rand_a` bits
 * (RFC 9562 §6.2, method 1), and if it overflows the timestamp is advanced by one.
 *
 * @example
 * await queue.add('email', { to, messageId: uuidv7() });
 */
export function uuidv7(now: number = Date.now()): string {
  if (poolOffset + 10 > pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const r = poolOffset;
  poolOffset += 10;

  let ms = now;
  if (ms > lastMs) {
    lastMs = ms;
    sequence = ((pool[r]! << 8) | pool[r + 1]!) & 0x7ff; // seed below half so the counter has room
  } else {
    ms = lastMs;
    sequence++;
    if (sequence > 0xfff) {
      lastMs = ++ms;
      sequence = 0;
    }
  }

  const b = bytes;
  b[0] = Math.floor(ms / 2 ** 40) & 0xff;
  b[1] = Math.floor(ms / 2 ** 32) & 0xff;
  b[2] = (ms >>> 24) & 0xff;
  b[3] = (ms >>> 16) & 0xff;
  b[4] = (ms >>> 8) & 0xff;
  b[5] = ms & 0xff;
  b[6] = 0x70 | (sequence >>> 8);
  b[7] = sequence & 0xff;
  b[8] = 0x80 | (pool[r + 2]! & 0x3f);
  for (let i = 9; i < 16; i++) b[i] = pool[r + i - 6]!;

  // Written as ASCII into a buffer and decoded once: a flat 36-byte string, where concatenating the
  // hex pairs would leave a tree of string pieces (hundreds of bytes) in every retained ID.
  let o = 0;
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) text[o++] = 0x2d; // '-'
    text[o++] = HEX_CODES[b[i]! >>> 4]!;
    text[o++] = HEX_CODES[b[i]! & 0x0f]!;
  }
  return text.toString('latin1');
}

/** The millisecond timestamp inside a UUIDv7. */
export function uuidv7Timestamp(id: string): number {
  const hex = id.slice(0, 8) + id.slice(9, 13);
  return Number.parseInt(hex, 16);
}
