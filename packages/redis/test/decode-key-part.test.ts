// decodeKeyPart, the inverse of the key encoding that admin listings use to show IDs. Pure: no Redis.
import { decodeKeyPart, encodeKeyPart, HASHED_MARKER } from '@onceonly/redis';
import { describe, expect, it } from 'vitest';
import { hostile, long } from './hostile-ids.js';

describe('decodeKeyPart', () => {
  it('gives back every hostile ID that was escaped, lone surrogates included', () => {
    for (const id of hostile) {
      const part = encodeKeyPart(id);
      if (part.startsWith(HASHED_MARKER)) continue;
      expect(decodeKeyPart(part), JSON.stringify(id)).toBe(id);
    }
  });

  it('answers undefined for hashed parts: a hash cannot be undone', () => {
    const hashed = hostile.map(encodeKeyPart).filter((part) => part.startsWith(HASHED_MARKER));
    expect(hashed.length).toBeGreaterThan(3);
    for (const part of hashed) expect(decodeKeyPart(part)).toBeUndefined();
  });

  it('refuses what the encoder never produces, so a decoded part always encodes back to itself', () => {
    for (const part of ['', '%41', '%c3%bc', '%C3', '%ZZ', '%', 'a%2', '%C0%80', '%F8%80%80%80%80', '%ED%A0', 'a:b', 'a b', long(129)]) {
      expect(decodeKeyPart(part), part).toBeUndefined();
    }
  });

  it('round-trips random strings over the characters that matter', () => {
    const alphabet = ['a', 'Z', '%', '#', '{', '}', ':', '*', ' ', '\n', '\u0000', 'ü', 'u\u0308', '😀', '\uD800', '\uDC00', '~', '-', '.'];
    let seed = 7;
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    for (let n = 0; n < 5_000; n++) {
      let id = '';
      for (let i = 0, length = 1 + Math.floor(random() * 8); i < length; i++) id += alphabet[Math.floor(random() * alphabet.length)];
      expect(decodeKeyPart(encodeKeyPart(id))).toBe(id);
    }
  });
});
