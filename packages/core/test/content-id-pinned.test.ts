// Issue 13 item 4: fingerprints and content IDs are hashed one-shot now. They must not change by a
// single byte: fingerprints already stored (Redis, PostgreSQL) are compared with new ones as text.
// These values were produced by the streaming implementation (createHash + update + digest) before the
// change, and checked against a plain SHA-256 of the documented input (see the first case).
import { createHash } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { contentId, fingerprintOf } from '@onceonly/core';

const big = 'x'.repeat(100_000);
const PINNED: [name: string, payload: unknown, namespace: string | undefined, fingerprint: string, contentId: string][] = [
  ['object', { orderId: 42, action: 'refund' }, undefined, 'IKCMxmIr5tsPifo4WmM_yl', 'IKCMxmIr5tsPifo4WmM_ylsGrolXs6psGkXWW7BkYI0'],
  ['object, keys reordered', { action: 'refund', orderId: 42 }, undefined, 'IKCMxmIr5tsPifo4WmM_yl', 'IKCMxmIr5tsPifo4WmM_ylsGrolXs6psGkXWW7BkYI0'],
  ['object, namespace', { orderId: 42, action: 'refund' }, 'payments', 'IKCMxmIr5tsPifo4WmM_yl', '-f7Vpqy2vXeNgpvlN8Jwb-CGT6pjtTsVPNWbA4N1uAE'],
  ['nested, Map, Set, Date', { a: [1, 2.5, null, true, 'ü😀'], m: new Map([['k', new Set([1])]]), d: new Date(0) }, undefined, 'HUXFgGd3_q9X-y3FFGGUq_', 'HUXFgGd3_q9X-y3FFGGUq_Hn9JiYP0AgEkmHq2dgod4'],
  ['string', 'hello', undefined, '4ZmHFmPXc5t5g7WxW9Stw5', '4ZmHFmPXc5t5g7WxW9Stw5FXpd1aUnSTHpRlm3YL5T0'],
  ['string, namespace', 'hello', 'ns:ü', '4ZmHFmPXc5t5g7WxW9Stw5', 'z6sLA-xQGMowaIhZhn4NKNYZF6a3hIrKCsytWW5WUes'],
  ['empty string', '', undefined, 'BDpxh3TFcr2KJa2-sb_NXA', 'BDpxh3TFcr2KJa2-sb_NXAJWrhHOz5-cP5JdDlK-r4k'],
  ['number', 1, undefined, 'CCQ2Zvkmqk5biEuO8fw7k9', 'CCQ2Zvkmqk5biEuO8fw7k9GeGRp5NYFTBha9LgMsR2E'],
  ['unicode string', '日本語 😀 u\u0308', undefined, 'q0oA_qeJkwo7TyLUOpeCeb', 'q0oA_qeJkwo7TyLUOpeCeb4_6x8ng5H-DjyT51eqEPY'],
  ['string with a lone surrogate', 'a\ud800b', undefined, 'Rel3HtjvgzpbbkfjnWoY8e', 'Rel3HtjvgzpbbkfjnWoY8eP1f5NfwLhM_FPjEpDar28'],
  ['bytes', new Uint8Array([1, 2, 3, 255]), undefined, 'RdEGhESrHGCIBGwC42aYmd', 'RdEGhESrHGCIBGwC42aYmdITgtmGncwYj7wuZSaPxXA'],
  ['Buffer, namespace', Buffer.from('ab'), 'bin', '7N2XQFx5tAjud5ECnQXStX', 'TOKvC2YZYxAdyiSCtHdLmbdFJBLBzucoPSWgFGdOfX8'],
  ['empty bytes', new Uint8Array(0), undefined, 'PiPoFgA5WUoziU9lZOGxNI', 'PiPoFgA5WUoziU9lZOGxNIu9egCI1CxKy3PurtWcAJ0'],
  ['large string', big, undefined, 'BY_LsjT9wGLuTAevX-mMel', 'BY_LsjT9wGLuTAevX-mMelLlr2L607cJiQ81-j03u6E'],
  ['large object', { big }, undefined, 'AVfP8vHPofKWNU3ELNkUjB', 'AVfP8vHPofKWNU3ELNkUjB2nriPxTUjLoo6m5LBXYQk'],
];

describe('fingerprintOf and contentId outputs are pinned', () => {
  it.each(PINNED)('%s', (_name, payload, namespace, fingerprint, id) => {
    expect(fingerprintOf(payload)).toBe(fingerprint);
    expect(contentId(payload, namespace === undefined ? {} : { namespace })).toBe(id);
  });

  it('is SHA-256 of a kind tag and the canonical JSON, as documented', () => {
    const digest = createHash('sha256').update('8:payments:j{"action":"refund","orderId":42}').digest('base64url');
    expect(contentId({ orderId: 42, action: 'refund' }, { namespace: 'payments' })).toBe(digest);
    expect(fingerprintOf({ orderId: 42, action: 'refund' })).toBe(createHash('sha256').update('j{"action":"refund","orderId":42}').digest('base64url').slice(0, 22));
  });

  it('hashes bytes of every size alike, one-shot (small) or streamed (large)', () => {
    for (const size of [0, 1, 511, 512, 513, 4_096, 100_000]) {
      const bytes = new Uint8Array(size).map((_, i) => (i * 31 + 7) & 255);
      const expected = createHash('sha256').update('2:ns:b').update(bytes).digest('base64url');
      expect(contentId(bytes, { namespace: 'ns' })).toBe(expected);
      expect(fingerprintOf(bytes)).toBe(createHash('sha256').update('b').update(bytes).digest('base64url').slice(0, 22));
    }
  });

  it('hashes bytes alike whatever the namespace, and nothing of an earlier, longer input', () => {
    // Small bytes are hashed from a reused input behind an ASCII prefix of at most 64 characters;
    // other prefixes take the other path. Each hash covers its own bytes only.
    const long = new Uint8Array(400).fill(7);
    const short = new Uint8Array([1, 2, 3]);
    for (const namespace of ['', 'ns', 'ns:ü', 'x'.repeat(59), 'x'.repeat(60), '𝄞'.repeat(3)]) {
      const prefix = namespace === '' ? 'b' : `${namespace.length}:${namespace}:b`;
      for (const bytes of [long, short, new Uint8Array(0)]) {
        const options = namespace === '' ? {} : { namespace };
        expect(contentId(bytes, options)).toBe(createHash('sha256').update(prefix).update(bytes).digest('base64url'));
      }
    }
  });

  it('hashes a view of part of a buffer by its own bytes only', () => {
    const whole = Buffer.from([9, 9, 1, 2, 3, 255, 9]);
    expect(fingerprintOf(whole.subarray(2, 6))).toBe('RdEGhESrHGCIBGwC42aYmd');
    expect(fingerprintOf(new Uint8Array(whole.buffer, whole.byteOffset + 2, 4))).toBe('RdEGhESrHGCIBGwC42aYmd');
  });
});

describe('without one-shot crypto.hash (Node before 20.12)', () => {
  it('the streaming fallback gives the same outputs', async () => {
    vi.resetModules();
    vi.doMock('node:crypto', async (importOriginal) => ({ ...(await importOriginal<typeof import('node:crypto')>()), hash: undefined }));
    try {
      const fallback = await import('../src/ids/content-id.js');
      for (const [, payload, namespace, fingerprint, id] of PINNED) {
        expect(fallback.fingerprintOf(payload)).toBe(fingerprint);
        expect(fallback.contentId(payload, namespace === undefined ? {} : { namespace })).toBe(id);
      }
    } finally {
      vi.doUnmock('node:crypto');
      vi.resetModules();
    }
  });
});
