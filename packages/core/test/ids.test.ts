import { describe, expect, it } from 'vitest';
import { InvalidIdError, canonicalJson, contentId, fingerprintOf, uuidv7, uuidv7Timestamp, validateId } from '@onceonly/core';

describe('validateId', () => {
  it('accepts ordinary and unusual but safe IDs', () => {
    for (const id of ['a', 'order:42', '{tag}', '*', 'ü', '日本語', '😀', 'x'.repeat(256)]) expect(validateId(id)).toBe(id);
  });

  it.each([
    [undefined, 'ID_MISSING', /missing/],
    [null, 'ID_MISSING', /missing/],
    ['', 'ID_MISSING', /empty/],
    [42, 'ID_INVALID', /must be a string, got number/],
    [{ id: 1 }, 'ID_INVALID', /got object/],
    [Buffer.from('x'), 'ID_INVALID', /got bytes/],
    ['x'.repeat(257), 'ID_TOO_LONG', /257 bytes.*limit is 256/],
    ['é'.repeat(129), 'ID_TOO_LONG', /258 bytes/],
    ['a\nb', 'ID_INVALID', /control character/],
    ['a\u0000', 'ID_INVALID', /control character/],
    ['\ud800x', 'ID_INVALID', /lone surrogate/],
  ])('rejects %j with %s', (id, code, message) => {
    let caught: unknown;
    try {
      validateId(id);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(InvalidIdError);
    expect(caught).toMatchObject({ code, retriable: false, name: 'InvalidIdError' });
    expect((caught as Error).message).toMatch(message);
  });

  it('honours a custom bound and label', () => {
    expect(() => validateId('abcd', { maxBytes: 3, label: 'header "x-id"' })).toThrow(/header "x-id" is 4 bytes/);
  });
});

describe('uuidv7', () => {
  it('is a version 7, variant 10 UUID carrying the time', () => {
    const now = Date.now();
    const id = uuidv7(now);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(uuidv7Timestamp(id)).toBe(now);
  });

  it('is strictly increasing within a process, even within one millisecond', () => {
    const ids = Array.from({ length: 20_000 }, () => uuidv7(1_700_000_000_000));
    for (let i = 1; i < ids.length; i++) expect(ids[i]! > ids[i - 1]!).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe('canonicalJson and contentId', () => {
  it('ignores key order, keeps array order', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, 1], c: null } })).toBe('{"a":{"c":null,"d":[2,1]},"b":1}');
    expect(contentId({ a: 1, b: 2 })).toBe(contentId({ b: 2, a: 1 }));
    expect(contentId([1, 2])).not.toBe(contentId([2, 1]));
  });

  it('separates namespaces and kinds of payload', () => {
    expect(contentId({ a: 1 }, { namespace: 'x' })).not.toBe(contentId({ a: 1 }, { namespace: 'y' }));
    expect(contentId('1')).not.toBe(contentId(1));
    expect(contentId(Buffer.from('ab'))).not.toBe(contentId('ab'));
    expect(contentId({ a: 1 })).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(fingerprintOf({ a: 1 })).toMatch(/^[A-Za-z0-9_-]{22}$/);
  });

  it('refuses values JSON cannot represent faithfully', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => canonicalJson(cyclic)).toThrow(/circular/);
    expect(() => canonicalJson({ n: 1n })).toThrow(/bigint/);
    expect(() => canonicalJson({ n: Number.NaN })).toThrow(/NaN/);
    expect(() => contentId({ f: () => 1 })).toThrow(expect.objectContaining({ code: 'FINGERPRINT_FAILED' }));
  });

  it('drops undefined members like JSON.stringify and honours toJSON', () => {
    expect(canonicalJson({ a: undefined, b: new Date(0) })).toBe('{"b":"1970-01-01T00:00:00.000Z"}');
  });

  it('names where a refused value sits', () => {
    expect(() => canonicalJson({ order: { lines: [{ qty: 1 }, { qty: Number.POSITIVE_INFINITY }] } })).toThrow('$.order.lines[1].qty is Infinity');
    expect(() => canonicalJson([new Map([['k', { f: Symbol('s') }]])])).toThrow('$[0].<value 0>.f is a symbol');
    expect(() => canonicalJson({ s: new Set([1, /x/]) })).toThrow('$.s.<item 1> is a RegExp');
  });

  it('writes objects of any prototype by their own members, and array holes as null (as JSON.stringify does)', () => {
    const bare = Object.assign(Object.create(null) as object, { b: 2, a: 1 });
    class Point {
      constructor(
        readonly y: number,
        readonly x: number,
      ) {}
    }
    expect(canonicalJson(bare)).toBe('{"a":1,"b":2}');
    expect(canonicalJson(new Point(2, 1))).toBe('{"x":1,"y":2}');
    // eslint-disable-next-line no-sparse-arrays
    const holes = [1, , 3];
    expect(canonicalJson(holes)).toBe(JSON.stringify(holes));
    expect(canonicalJson([1, undefined, 3])).toBe('[1,null,3]');
  });
});
