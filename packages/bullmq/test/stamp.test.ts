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

describe('onceonly options', () => {
  it('fails fast on a wrong option, naming it', () => {
    expect(() => onceonly(async () => 1, { id: 'offset' as never })).toThrow(/"id"/);
    expect(() => onceonly(async () => 1, { stampKey: '' })).toThrow(/"stampKey"/);
    expect(() => onceonly(async () => 1, { scope: 'q', leaseMs: 1 })).toThrow(/"leaseMs"/);
    expect(() => onceonly(async () => 1, { scope: 'q', bogus: 1 } as never)).toThrow(/bogus/);
    expect(() => onceonly('nope' as never)).toThrow(TypeError);
  });
});
