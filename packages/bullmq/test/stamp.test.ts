import { addBulkStamped, addStamped, onceonly, readStamp, stamp, type QueueLike } from '@onceonly/bullmq';
import { contentId, InvalidIdError, InvalidOptionsError, uuidv7Timestamp } from '@onceonly/core';
import { describe, expect, it } from 'vitest';

describe('stamp', () => {
  it('adds a UUIDv7 under onceonlyId by default, without changing the input', () => {
    const data = { to: 'ada' };
    const stamped = stamp(data);
    expect(data).toEqual({ to: 'ada' });
    expect(stamped.to).toBe('ada');
    expect(Math.abs(uuidv7Timestamp(stamped.onceonlyId!) - Date.now())).toBeLessThan(5_000);
    expect(readStamp(stamped)).toBe(stamped.onceonlyId);
  });

  it('keeps an existing stamp, so stamping twice never changes the identity', () => {
    const once = stamp({ to: 'ada' });
    expect(stamp(once)).toBe(once);
  });

  it('content IDs depend on the data only (key order aside); business keys are validated', () => {
    expect(stamp({ a: 1, b: 2 }, { id: 'content' }).onceonlyId).toBe(stamp({ b: 2, a: 1 }, { id: 'content' }).onceonlyId);
    expect(stamp({ a: 1 }, { id: 'content' }).onceonlyId).toBe(contentId({ a: 1 }));
    expect(stamp({ a: 1 }, { id: 'order-17', key: 'msgId' })).toEqual({ a: 1, msgId: 'order-17' });
    expect(() => stamp({ a: 1 }, { id: 'x'.repeat(300) })).toThrow(InvalidIdError);
  });

  it('refuses data that cannot carry a stamp', () => {
    expect(() => stamp([1, 2] as never)).toThrow(InvalidOptionsError);
    expect(() => stamp('text' as never)).toThrow(/plain object/);
    expect(() => stamp(null as never)).toThrow(/got null/);
    expect(() => stamp({ a: 1 }, { key: '' })).toThrow(InvalidOptionsError);
  });
});

describe('addStamped / addBulkStamped', () => {
  const recorder = () => {
    const added: { name: string; data: Record<string, unknown>; opts?: Record<string, unknown> }[] = [];
    const queue: QueueLike = {
      add: async (name, data, opts) => (added.push({ name, data, opts: opts as Record<string, unknown> }), {} as never),
      addBulk: async (jobs) => (added.push(...(jobs as never[])), [] as never),
    };
    return { queue, added };
  };

  it('stamps every job and can use the stamp as BullMQ jobId', async () => {
    const { queue, added } = recorder();
    await addStamped(queue, 'a', { n: 1 }, { attempts: 3 }, { jobId: true });
    await addBulkStamped(queue, [{ name: 'b', data: { n: 2 } }, { name: 'c', data: stamp({ n: 3 }, { id: 'k3' }) }]);
    expect(added[0]!.opts).toEqual({ attempts: 3, jobId: added[0]!.data.onceonlyId });
    expect(typeof added[1]!.data.onceonlyId).toBe('string');
    expect(added[2]!.data.onceonlyId).toBe('k3');
  });

  it('rejects a jobId that contradicts the stamp, or a stamp BullMQ cannot use as jobId', async () => {
    const { queue } = recorder();
    await expect(addStamped(queue, 'a', { n: 1 }, { jobId: 'other' }, { jobId: true })).rejects.toThrow(/conflicts with opts.jobId/);
    await expect(addStamped(queue, 'a', { n: 1 }, {}, { id: 'a:b', jobId: true })).rejects.toThrow(/without ":"/);
  });
});

describe('a job that already carries an invalid ID is refused by the producer (issue 9, item 12)', () => {
  const recorder = () => {
    const added: unknown[] = [];
    const queue: QueueLike = {
      add: async (name, data) => (added.push({ name, data }), {} as never),
      addBulk: async (jobs) => (added.push(...jobs), [] as never),
    };
    return { queue, added };
  };

  it.each([
    { what: 'an empty ID', id: '', code: 'ID_MISSING' },
    { what: 'null', id: null, code: 'ID_MISSING' },
    { what: 'an oversized ID', id: 'x'.repeat(257), code: 'ID_TOO_LONG' },
    { what: 'an ID over the byte limit in UTF-8', id: 'é'.repeat(129), code: 'ID_TOO_LONG' },
    { what: 'a number', id: 42, code: 'ID_INVALID' },
    { what: 'an object', id: { id: 1 }, code: 'ID_INVALID' },
    { what: 'a newline', id: 'a\nb', code: 'ID_INVALID' },
    { what: 'a C1 control character', id: 'a\u0085b', code: 'ID_INVALID' },
    { what: 'a lone surrogate', id: 'a\ud800b', code: 'ID_INVALID' },
  ] as { what: string; id: unknown; code: string }[])('$what: stamp, addStamped and addBulkStamped throw InvalidIdError ($code) and add nothing', async ({ id, code }) => {
    const { queue, added } = recorder();
    const data = { n: 1, onceonlyId: id };
    const thrown = (() => {
      try {
        stamp(data);
      } catch (error) {
        return error;
      }
    })();
    expect(thrown).toBeInstanceOf(InvalidIdError);
    expect((thrown as InvalidIdError).code).toBe(code);
    expect((thrown as Error).message).toMatch(/onceonlyId/);

    await expect(addStamped(queue, 'a', data)).rejects.toMatchObject({ name: 'InvalidIdError', code });
    // One bad job in a batch: nothing of the batch is added.
    await expect(addBulkStamped(queue, [{ name: 'ok', data: { n: 0 } }, { name: 'bad', data }, { name: 'ok', data: { n: 2 } }])).rejects.toBeInstanceOf(
      InvalidIdError,
    );
    expect(added).toEqual([]);
  });

  it('the byte limit is the worker\'s default (256), and can be raised like the worker\'s maxIdBytes', async () => {
    const { queue, added } = recorder();
    expect(stamp({ onceonlyId: 'x'.repeat(256) }).onceonlyId).toHaveLength(256);
    expect(() => stamp({ onceonlyId: 'x'.repeat(300) })).toThrow(/300 bytes .* limit is 256/);
    expect(stamp({ onceonlyId: 'x'.repeat(300) }, { maxIdBytes: 512 }).onceonlyId).toHaveLength(300);
    await addStamped(queue, 'a', { onceonlyId: 'x'.repeat(300) }, undefined, { maxIdBytes: 512 });
    expect(added).toHaveLength(1);
    // A business key is held to the same limit.
    expect(() => stamp({ a: 1 }, { id: 'k'.repeat(300) })).toThrow(InvalidIdError);
    expect(stamp({ a: 1 }, { id: 'k'.repeat(300), maxIdBytes: 300 }).onceonlyId).toHaveLength(300);
    // The stamp key is the one checked.
    expect(() => stamp({ msgId: '' }, { key: 'msgId' })).toThrow(/msgId/);
    expect(stamp({ onceonlyId: '' }, { key: 'msgId' }).msgId).toEqual(expect.any(String));
  });

  it('a wrong maxIdBytes is refused, named', () => {
    for (const maxIdBytes of [0, 1.5, 5_000, '256']) {
      expect(() => stamp({ a: 1 }, { maxIdBytes } as never)).toThrow(InvalidOptionsError);
      expect(() => stamp({ a: 1 }, { maxIdBytes } as never)).toThrow(/"maxIdBytes"/);
    }
  });
});

describe('onceonly options', () => {
  it('fails fast on a wrong option, naming it', () => {
    expect(() => onceonly(async () => 1, { id: 'offset' as never })).toThrow(/"id"/);
    expect(() => onceonly(async () => 1, { stampKey: '' })).toThrow(/"stampKey"/);
    expect(() => onceonly(async () => 1, { scope: 'q', leaseMs: 1 })).toThrow(/"leaseMs"/);
    expect(() => onceonly(async () => 1, { scope: 'q', bogus: 1 } as never)).toThrow(/bogus/);
    expect(() => onceonly('nope' as never)).toThrow(TypeError);
  });
});
