import { describe, expect, it } from 'vitest';
import type { ClaimResult, TransitionResult } from '@onceonly/core';
import { decodeRecordValue, encodeFingerprint, encodeRecordValue, MalformedRecordError, type StoredRecord } from '../src/record-value.js';
import { decodeClaims, decodeTransitions, UnexpectedReplyError } from '../src/replies.js';
import { prefixProblem } from '../src/keys.js';

describe('script replies', () => {
  const value = (record: Parameters<typeof encodeRecordValue>[0]) => encodeRecordValue(record);

  it('decode a mixed claim batch: the epoch, now, the seed, then acquired answers and found records as values', () => {
    const lease = (i: number) => [500, 0, 0, 0, 1_500][i]!;
    const reply = [
      Buffer.from('epoch-1'),
      500,
      17,
      1,
      2, value({ state: 2, suspect: false, token: 9_000, claimedAt: 100, updatedAt: 200, fingerprint: 'fp', extra: '{"ok":true}' }),
      2, value({ state: 1, suspect: false, token: 5_000, claimedAt: 100, updatedAt: 100, leaseUntil: 1_500 }),
      2, value({ state: 3, suspect: false, token: 6_000, claimedAt: 100, updatedAt: 300, extra: 'E_CODE' }),
      3, 18, 1,
    ];
    const results: ClaimResult[] = [];
    expect(decodeClaims(reply, results, undefined, 5, lease)).toBe('epoch-1');
    expect(results).toEqual([
      { status: 'acquired', token: 17, takeover: false, leaseUntil: 1_000 },
      { status: 'completed', record: { state: 'completed', token: 9_000, claimedAt: 100, updatedAt: 200, fingerprint: 'fp', result: '{"ok":true}' } },
      { status: 'in-progress', record: { state: 'in-progress', token: 5_000, claimedAt: 100, updatedAt: 100, leaseUntil: 1_500 } },
      { status: 'failed', record: { state: 'failed', token: 6_000, claimedAt: 100, updatedAt: 300, error: 'E_CODE' } },
      { status: 'acquired', token: 18, takeover: true, leaseUntil: 2_000 },
    ]);
    // No undefined-valued keys: records compare equal to the memory store's with toStrictEqual.
    expect(Object.keys((results[2] as { record: object }).record)).not.toContain('fingerprint');
    // An epoch the call wrote itself arrives as null (RESP2) or false (RESP3).
    expect(decodeClaims([null, 500, 17, 1], [], undefined, 1, lease)).toBeUndefined();
    expect(decodeClaims([false, 500, 17, 1], [], undefined, 1, lease)).toBeUndefined();
  });

  it('place answers at the given slots (a multi-scope batch)', () => {
    const results: TransitionResult[] = [];
    decodeTransitions([1, 0], results, [2, 0], 2);
    expect(results[0]).toBe('lease-lost');
    expect(results[2]).toBe('ok');
  });

  it('reject a reply of the wrong shape', () => {
    const lease = () => 1;
    expect(() => decodeClaims([null, 500, 17, 3, 18], [], undefined, 1, lease)).toThrow(UnexpectedReplyError);
    expect(() => decodeClaims([null, 500, 17, 9, 1], [], undefined, 1, lease)).toThrow(UnexpectedReplyError);
    expect(() => decodeClaims([null, 500, 17, 2, 'not a buffer'], [], undefined, 1, lease)).toThrow(UnexpectedReplyError);
    expect(() => decodeClaims([1, 500, 17, 1], [], undefined, 1, lease)).toThrow(UnexpectedReplyError);
    expect(() => decodeClaims([null, 500, 17, 1, 1], [], undefined, 1, lease)).toThrow(UnexpectedReplyError);
    expect(() => decodeTransitions([1], [], undefined, 2)).toThrow(UnexpectedReplyError);
    expect(() => decodeTransitions('OK', [], undefined, 1)).toThrow(UnexpectedReplyError);
  });
});

describe('record values', () => {
  const base = { suspect: false, token: 1_761_234_567_890_123, claimedAt: 1_761_234_567_890, updatedAt: 1_761_234_567_890 } as const;

  it('round-trip every state, flag and field, and pin the header byte', () => {
    const records: StoredRecord[] = [
      { ...base, state: 1, leaseUntil: base.claimedAt + 30_000, fingerprint: 'Ab9_-zZ0aB1cD2eF3gH4iJ' },
      { ...base, state: 0, suspect: true, leaseUntil: 1, fingerprint: 'ü日😀' },
      { ...base, state: 2, token: base.token + 3, claimedAt: base.claimedAt + 95_000, updatedAt: base.claimedAt + 96_000, extra: '' },
      { ...base, state: 2, updatedAt: base.claimedAt - 5, fingerprint: 'x'.repeat(512), extra: '{"a":1}' },
      { ...base, state: 3, updatedAt: base.claimedAt + 10_000_000, extra: 'E_CODE' },
    ];
    for (const record of records) expect(decodeRecordValue(encodeRecordValue(record))).toEqual(record);
    expect(encodeRecordValue(records[0]!)[0]).toBe(64 + 1 + 8 + 16);
    expect(encodeRecordValue(records[1]!)[0]).toBe(64 + 0 + 4 + 8);
    expect(encodeRecordValue(records[4]!)[0]).toBe(64 + 3 + 32);
  });

  it('keep a fast completed record without fingerprint or result as the digits of token · 1000 + ms', () => {
    const record = { ...base, state: 2, updatedAt: base.claimedAt + 42 } as const;
    const value = encodeRecordValue(record);
    expect(value.toString()).toBe(`${base.token}042`);
    expect(decodeRecordValue(value)).toEqual(record);
    // Slower than 999 ms, or claimed twice: the compact form.
    expect(encodeRecordValue({ ...record, updatedAt: base.claimedAt + 1_000 })[0]).toBe(64 + 2);
    expect(encodeRecordValue({ ...record, token: base.token + 1_000 })[0]).toBe(64 + 2);
  });

  it('pack a fingerprint of 22 base64url characters into 17 bytes, and keep any other as UTF-8', () => {
    expect(encodeFingerprint(undefined)).toBe('');
    const packed = encodeFingerprint('Ab9_-zZ0aB1cD2eF3gH4iJ') as Buffer;
    expect(packed.length).toBe(18);
    expect(packed[0]).toBe(24);
    const raw = encodeFingerprint('short') as Buffer;
    expect([...raw]).toEqual([8, 10, ...Buffer.from('short')]);
  });

  it('reject values that are not records', () => {
    for (const bad of ['', 'not a record', '0123', '12', '\x40short', 'A'.repeat(9)]) {
      expect(() => decodeRecordValue(Buffer.from(bad, 'latin1')), bad).toThrow(MalformedRecordError);
    }
    const truncated = encodeRecordValue({ ...base, state: 1, leaseUntil: base.claimedAt + 30_000, fingerprint: 'Ab9_-zZ0aB1cD2eF3gH4iJ' });
    expect(() => decodeRecordValue(truncated.subarray(0, truncated.length - 1))).toThrow(MalformedRecordError);
    expect(() => decodeRecordValue(Buffer.concat([truncated, Buffer.of(0)]))).toThrow(MalformedRecordError);
  });
});

describe('prefix rules', () => {
  it('accept ordinary prefixes and explain the rest', () => {
    for (const ok of ['onceonly', 'myapp:dedup', 'a', 'svc-1.prod/x', 'x'.repeat(64)]) expect(prefixProblem(ok)).toBeUndefined();
    expect(prefixProblem('')).toMatch(/empty/);
    expect(prefixProblem('a{b')).toMatch(/"\{" or "\}"/);
    expect(prefixProblem('a*')).toMatch(/glob/);
    expect(prefixProblem('a\\b')).toMatch(/glob/);
    expect(prefixProblem('ü')).toMatch(/printable ASCII/);
    expect(prefixProblem('x'.repeat(65))).toMatch(/at most 64/);
  });
});
