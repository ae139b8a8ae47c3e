// Audit item 7: payloads JSON.stringify cannot see into (Map, Set, typed arrays) must not fingerprint
// alike; state-hiding objects are refused; and a delivery without a payload is judged by its ID alone.
import { describe, expect, it } from 'vitest';
import { canonicalJson, contentId, DedupProcessor, FingerprintError, fingerprintOf } from '@onceonly/core';

const scope = 'fingerprints';

describe('fingerprints of non-JSON payloads', () => {
  it('Maps and Sets with different content differ; the same content in another order is equal', () => {
    expect(fingerprintOf(new Map([['a', 1]]))).not.toBe(fingerprintOf(new Map([['a', 2]])));
    expect(fingerprintOf(new Map([['a', 1], ['b', 2]]))).toBe(fingerprintOf(new Map([['b', 2], ['a', 1]])));
    expect(fingerprintOf(new Set([1, 2]))).not.toBe(fingerprintOf(new Set([1, 3])));
    expect(fingerprintOf(new Set(['x', 'y']))).toBe(fingerprintOf(new Set(['y', 'x'])));
    expect(fingerprintOf({ items: new Map([['k', new Set([1])]]) })).not.toBe(fingerprintOf({ items: new Map([['k', new Set([2])]]) }));
  });

  it('never collide with a plain object or array (the extended forms are not JSON)', () => {
    expect(fingerprintOf(new Map())).not.toBe(fingerprintOf({}));
    expect(fingerprintOf(new Set([1]))).not.toBe(fingerprintOf([1]));
    expect(fingerprintOf({ b: new Uint8Array([1, 2]) })).not.toBe(fingerprintOf({ b: { 0: 1, 1: 2 } }));
    expect(canonicalJson(new Map<string, unknown>([['b', 1], ['a', [2]]]))).toBe('Map[["a",[2]],["b",1]]');
    expect(canonicalJson({ s: new Set([2, 1]) })).toBe('{"s":Set[1,2]}');
    expect(contentId(new Map([['a', 1]]))).not.toBe(contentId(new Map([['a', 2]])));
  });

  it('typed arrays and ArrayBuffers inside a payload are compared by their bytes', () => {
    expect(fingerprintOf({ b: new Uint8Array([1, 2]) })).not.toBe(fingerprintOf({ b: new Uint8Array([1, 3]) }));
    expect(fingerprintOf({ b: new Uint8Array([1, 2]).buffer })).toBe(fingerprintOf({ b: new Uint8Array([1, 2]).buffer }));
  });

  it('objects that hide their state from JSON are refused with a typed error', async () => {
    for (const payload of [{ r: /a/ }, { w: new WeakMap() }, { p: Promise.resolve(1) }, { e: new Error('x') }]) {
      expect(() => fingerprintOf(payload)).toThrow(FingerprintError);
    }
    const outcome = await new DedupProcessor({ scope }).process({ id: 'm', payload: { r: /a/ } }, () => 1);
    expect(outcome.status === 'failed' && outcome.error).toMatchObject({ code: 'FINGERPRINT_FAILED' });
  });

  it('a Map payload with different content under the same ID is a conflict', async () => {
    const p = new DedupProcessor({ scope });
    await p.process({ id: 'm', payload: new Map([['qty', 1]]) }, () => 'ok');
    expect((await p.process({ id: 'm', payload: new Map([['qty', 2]]) }, () => 'ok')).status).toBe('conflict');
    expect((await p.process({ id: 'm', payload: new Map([['qty', 1]]) }, () => 'ok')).status).toBe('duplicate');
  });
});

describe('deliveries with and without a payload', () => {
  it('first without a payload, later with one: a duplicate (the ID alone decides; nothing to compare)', async () => {
    const p = new DedupProcessor({ scope });
    await p.process({ id: 'm' }, () => 'ok');
    const later = await p.process({ id: 'm', payload: { any: 'thing' } }, () => 'again');
    expect(later.status).toBe('duplicate');
    expect(later).not.toHaveProperty('conflict');
  });

  it('first with a payload, later without one: a duplicate too', async () => {
    const p = new DedupProcessor({ scope });
    await p.process({ id: 'm', payload: { any: 'thing' } }, () => 'ok');
    expect((await p.process({ id: 'm' }, () => 'again')).status).toBe('duplicate');
  });
});
