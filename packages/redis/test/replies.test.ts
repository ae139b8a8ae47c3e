import { describe, expect, it } from 'vitest';
import type { ClaimResult, TransitionResult } from '@onceonly/core';
import { decodeClaims, decodeTransitions, UnexpectedReplyError } from '../src/replies.js';
import { prefixProblem } from '../src/keys.js';

describe('script replies', () => {
  it('decode a mixed claim batch, with absent values as null (RESP2) or false (RESP3)', () => {
    const reply = [
      1, 17, 0, 1_000,
      3, 9, 100, 200, null, 'fp', '{"ok":true}',
      2, 5, 100, 100, 1_500, false, false,
      4, 6, 100, 300, false, null, 'E_CODE',
      1, 18, 1, 2_000,
    ];
    const results: ClaimResult[] = [];
    decodeClaims(reply, results, undefined, 5);
    expect(results).toEqual([
      { status: 'acquired', token: 17, takeover: false, leaseUntil: 1_000 },
      { status: 'completed', record: { state: 'completed', token: 9, claimedAt: 100, updatedAt: 200, fingerprint: 'fp', result: '{"ok":true}' } },
      { status: 'in-progress', record: { state: 'in-progress', token: 5, claimedAt: 100, updatedAt: 100, leaseUntil: 1_500 } },
      { status: 'failed', record: { state: 'failed', token: 6, claimedAt: 100, updatedAt: 300, error: 'E_CODE' } },
      { status: 'acquired', token: 18, takeover: true, leaseUntil: 2_000 },
    ]);
    // No undefined-valued keys: records compare equal to the memory store's with toStrictEqual.
    expect(Object.keys((results[2] as { record: object }).record)).not.toContain('fingerprint');
  });

  it('place answers at the given slots (a multi-scope batch)', () => {
    const results: TransitionResult[] = [];
    decodeTransitions([1, 0], results, [2, 0], 2);
    expect(results[0]).toBe('lease-lost');
    expect(results[2]).toBe('ok');
  });

  it('reject a reply of the wrong shape', () => {
    expect(() => decodeClaims([1, 17, 0], [], undefined, 1)).toThrow(UnexpectedReplyError);
    expect(() => decodeClaims([9, 1, 1, 1, null, null, null], [], undefined, 1)).toThrow(UnexpectedReplyError);
    expect(() => decodeTransitions([1], [], undefined, 2)).toThrow(UnexpectedReplyError);
    expect(() => decodeTransitions('OK', [], undefined, 1)).toThrow(UnexpectedReplyError);
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
