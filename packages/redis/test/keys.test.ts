// Key encoding, pure: no Redis needed. The keys' behaviour in a real Redis (and a cluster) is tested in
// test/redis/keys.test.ts and test/redis/cluster.test.ts.
import { encodeKeyPart, HASHED_MARKER, MAX_PART_LENGTH } from '@onceonly/redis';
import { describe, expect, it } from 'vitest';
import { hostile, long } from './hostile-ids.js';

describe('key encoding', () => {
  it('is injective on hostile IDs, including the hashed form of another ID', () => {
    const ids = [...hostile, ...hostile.filter((id) => encodeKeyPart(id).startsWith(HASHED_MARKER)).map(encodeKeyPart)];
    const encoded = new Map<string, string>();
    for (const id of new Set(ids)) {
      const part = encodeKeyPart(id);
      const clash = encoded.get(part);
      expect(clash === undefined ? undefined : JSON.stringify(clash), `collision with ${JSON.stringify(id)}`).toBeUndefined();
      encoded.set(part, id);
    }
  });

  it('stays in a safe alphabet and bounded whatever the input', () => {
    for (const id of hostile) {
      const part = encodeKeyPart(id);
      expect(part.length).toBeLessThanOrEqual(MAX_PART_LENGTH);
      expect(part).toMatch(/^(?:[A-Za-z0-9._~%-]*|#[A-Za-z0-9_-]{43})$/);
    }
  });

  it('keeps plain IDs readable and percent-encodes the rest as UTF-8', () => {
    expect(encodeKeyPart('0192f1a2-7b3c-7d4e-8f00-123456789abc')).toBe('0192f1a2-7b3c-7d4e-8f00-123456789abc');
    expect(encodeKeyPart('orders/3/1042')).toBe('orders%2F3%2F1042');
    expect(encodeKeyPart('a:{b}*')).toBe('a%3A%7Bb%7D%2A');
    expect(encodeKeyPart('ü')).toBe('%C3%BC');
    expect(encodeKeyPart('#')).toBe('%23');
    expect(encodeKeyPart('\uD800')).toBe('%ED%A0%80'); // lone surrogate: WTF-8
    expect(encodeKeyPart(long(MAX_PART_LENGTH + 1))).toMatch(/^#[A-Za-z0-9_-]{43}$/);
  });
});


describe('key encoding, randomised', () => {
  // Short strings over an alphabet of the characters that matter: every collision would show here.
  const alphabet = ['a', 'A', '2', '5', '%', '#', '{', '}', ':', '*', ' ', '\n', 'ü', '😀', '\uD800', '\uDC00', '~', '-'];

  it('round-trips (decodes back to the ID) and never collides', () => {
    let seed = 42;
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    const seen = new Map<string, string>();
    for (let n = 0; n < 20_000; n++) {
      let id = '';
      const length = 1 + Math.floor(random() * 6);
      for (let i = 0; i < length; i++) id += alphabet[Math.floor(random() * alphabet.length)];
      const part = encodeKeyPart(id);
      const previous = seen.get(part);
      if (previous !== undefined) expect(previous).toBe(id);
      seen.set(part, id);
      // Well-formed IDs decode back exactly: the encoding loses nothing.
      if (id.isWellFormed()) expect(decodeURIComponent(part)).toBe(id);
    }
  });
});
