import { addBulkStamped, addStamped, stamp } from '@onceonly/bullmq';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { BullmqTestContext } from './bullmq-test-context.js';

let ctx: BullmqTestContext;
afterEach(async () => {
  await ctx?.close();
});

describe('BullMQ worker processes', () => {
  it('runs a stamped job added 5 times once; every repeat completes with the first result', async () => {
    ctx = new BullmqTestContext(inject('redisUrl'));
    const worker = await ctx.startWorker({ NAME: 'w1' });
    const data = stamp({ to: 'ada@example.com' });
    const results: unknown[] = [];
    for (let i = 0; i < 5; i++) {
      const job = await addStamped(ctx.queue, 'welcome', data);
      const done = await ctx.waitForState(job, ['completed', 'failed']);
      expect(await done.getState()).toBe('completed');
      results.push(done.returnvalue);
      await done.remove();
    }
    const id = data.onceonlyId!;
    expect(await ctx.effects()).toEqual({ [id]: 1 });
    expect(results[0]).toMatchObject({ by: 'w1' });
    expect(results).toEqual(Array.from({ length: 5 }, () => results[0]));
    expect(worker.outcomes().map((o) => o.status)).toEqual(['processed', 'duplicate', 'duplicate', 'duplicate', 'duplicate']);
  });

  it('two workers × concurrency 10, 2 000 jobs with 20 % re-added duplicates: each effect once, every job completed', async () => {
    ctx = new BullmqTestContext(inject('redisUrl'));
    const workers = await Promise.all([
      ctx.startWorker({ NAME: 'w1', CONCURRENCY: 10, RETRY_MS: 100 }),
      ctx.startWorker({ NAME: 'w2', CONCURRENCY: 10, RETRY_MS: 100 }),
    ]);
    const originals = Array.from({ length: 2_000 }, (_, i) => ({ name: 'order', data: stamp({ order: i }) }));
    // Every fifth message is added again (as a producer retry would), some while the first is running.
    const repeats = originals.filter((_, i) => i % 5 === 0).map((job) => ({ ...job }));
    const jobs = [...originals];
    repeats.forEach((job, k) => jobs.splice(Math.min(jobs.length, (k + 1) * 5 + 3), 0, job));
    expect(jobs).toHaveLength(2_400);
    for (let i = 0; i < jobs.length; i += 200) await addBulkStamped(ctx.queue, jobs.slice(i, i + 200));

    const deadline = Date.now() + 60_000;
    let counts = await ctx.queue.getJobCounts('completed', 'failed');
    while (counts.completed! + counts.failed! < 2_400 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      counts = await ctx.queue.getJobCounts('completed', 'failed');
    }
    expect(counts).toEqual({ completed: 2_400, failed: 0 });

    const effects = await ctx.effects();
    expect(Object.keys(effects)).toHaveLength(2_000);
    expect(Object.values(effects).filter((n) => n !== 1)).toEqual([]);
    expect(new Set(Object.keys(effects))).toEqual(new Set(originals.map((j) => j.data.onceonlyId)));
    for (const worker of workers) expect(worker.outcomes().filter((o) => o.status === 'processed').length).toBeGreaterThan(100);
    const duplicates = workers.flatMap((w) => w.outcomes()).filter((o) => o.status === 'duplicate');
    expect(duplicates).toHaveLength(400);
  });

  it('delays a job whose lease a live worker holds, without using an attempt, and completes it once the first finishes', async () => {
    ctx = new BullmqTestContext(inject('redisUrl'));
    const slow = await ctx.startWorker({ NAME: 'slow', MODE: 'slow', SLOW_MS: 2_500 });
    const data = stamp({ report: 'q3' });
    const first = await addStamped(ctx.queue, 'report', data, { attempts: 1 });
    await slow.at('start');
    const other = await ctx.startWorker({ NAME: 'other', RETRY_MS: 300 });
    const second = await addStamped(ctx.queue, 'report', data, { attempts: 1 });

    const delayed = await ctx.waitForState(second, ['delayed', 'completed', 'failed'], 10_000);
    expect(await delayed.getState()).toBe('delayed');
    expect(delayed.attemptsMade).toBe(0);
    await other.waitFor((line) => line.kind === 'OUTCOME' && line.data.status === 'in-progress');

    const firstDone = await ctx.waitForState(first, ['completed', 'failed']);
    const secondDone = await ctx.waitForState(second, ['completed', 'failed']);
    expect(await secondDone.getState()).toBe('completed');
    expect(secondDone.attemptsMade).toBeLessThanOrEqual(1); // only the final, completing run counts
    expect(secondDone.returnvalue).toEqual(firstDone.returnvalue);
    expect(firstDone.returnvalue).toMatchObject({ by: 'slow' });
    expect(await ctx.effects()).toEqual({ [data.onceonlyId!]: 1 });
  });
});
