import { randomFillSync } from 'node:crypto';

// Random bytes are drawn in blocks: one syscall-backed fill per 256 IDs instead of one per ID.
const POOL_IDS = 256;
const pool = new Uint8Array(POOL_IDS * 10);
let poolOffset = pool.length;

let lastMs = -1;
let sequence = 0;

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

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

  const b = new Uint8Array(16);
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

  return (
    HEX[b[0]!]! + HEX[b[1]!]! + HEX[b[2]!]! + HEX[b[3]!]! + '-' +
    HEX[b[4]!]! + HEX[b[5]!]! + '-' + HEX[b[6]!]! + HEX[b[7]!]! + '-' +
    HEX[b[8]!]! + HEX[b[9]!]! + '-' +
    HEX[b[10]!]! + HEX[b[11]!]! + HEX[b[12]!]! + HEX[b[13]!]! + HEX[b[14]!]! + HEX[b[15]!]!
  );
}

/** The millisecond timestamp inside a UUIDv7. */
export function uuidv7Timestamp(id: string): number {
  const hex = id.slice(0, 8) + id.slice(9, 13);
  return Number.parseInt(hex, 16);
}
