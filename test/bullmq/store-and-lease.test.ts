import { onceonly, stamp } from '@onceonly/bullmq';
import { StoreUnavailableError, type Outcome } from '@onceonly/core';
import { RedisStore } from '@onceonly/redis';
import { Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { connectRedis, startRedisServer } from '../support/redis-server.js';
import { BullmqTestContext } from './bullmq-test-context.js';

const cleanup: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

function context(): BullmqTestContext {
  const ctx = new BullmqTestContext(inject('redisUrl'));
  cleanup.push(() => ctx.close());
  return ctx;
}

function worker(ctx: BullmqTestContext, processor: ReturnType<typeof onceonly>): Worker {
  const w = new Worker(ctx.name, processor, { connection: { url: ctx.redisUrl, maxRetriesPerRequest: null }, concurrency: 5 });
  cleanup.push(() => w.close());
  return w;
}

describe('BullMQ with the store down, and with long handlers', () => {
  it('store unavailable: fail-closed, the job is retried with nothing marked, and completes once the store is back', async () => {
    const ctx = context();
    const server = await startRedisServer();
    cleanup.push(() => server.stop());
    const client: Redis = await connectRedis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: () => 50 });
    cleanup.push(() => client.disconnect());
    const store = new RedisStore({ client, prefix: ctx.prefix });
    let ran = 0;
    const errors: Error[] = [];
    const wrapped = onceonly(async () => ++ran, { store, scope: ctx.name });
    const w = worker(ctx, wrapped);
    w.on('failed', (_job, error) => errors.push(error));

    await server.stop();
    const data = stamp({ n: 1 });
    const job = await ctx.queue.add('task', data, { attempts: 20, backoff: { type: 'fixed', delay: 200 } });
    while (errors.length < 2) await new Promise((r) => setTimeout(r, 25));
    expect(errors.every((e) => e instanceof StoreUnavailableError && e.retriable)).toBe(true);
    expect(ran).toBe(0);
    expect(await ctx.waitForState(job, ['delayed', 'wait', 'active'])).toBeDefined(); // retrying, not failed

    const restarted = await startRedisServer({ port: server.port });
    cleanup.push(() => restarted.stop());
    const done = await ctx.waitForState(job, ['completed', 'failed'], 20_000);
    expect(await done.getState()).toBe('completed');
    expect(done.returnvalue).toBe(1);
    expect(ran).toBe(1);
    expect((await store.get(ctx.name, data.onceonlyId!))?.state).toBe('completed');
  });

  it('extends the lease while a handler outlives it: a repeat on another worker is delayed, not taken over', async () => {
    const ctx = context();
    const client = await connectRedis(ctx.redisUrl);
    cleanup.push(() => client.disconnect());
    const store = new RedisStore({ client, prefix: ctx.prefix });
    const outcomes: Outcome[] = [];
    const leaseMs = 300;
    // Two workers, each with its own processor, sharing the store (as two processes would).
    const make = () => {
      const wrapped = onceonly(
        async (job: Job) => {
          if (job.name === 'slow') await new Promise((r) => setTimeout(r, leaseMs * 5));
          return job.name;
        },
        { scope: ctx.name, store, leaseMs, inProgressRetryMs: 100, recordResults: true },
      );
      for (const p of wrapped.processors()) p.on('outcome', (o) => outcomes.push(o));
      cleanup.push(() => wrapped.close());
      return new Worker(ctx.name, wrapped, { connection: { url: ctx.redisUrl, maxRetriesPerRequest: null }, concurrency: 1 });
    };
    const first = make();
    cleanup.push(() => first.close());
    const data = stamp({ n: 1 });
    const slow = await ctx.queue.add('slow', data);
    await ctx.waitForState(slow, ['active']);
    const second = make();
    cleanup.push(() => second.close());
    await new Promise((r) => setTimeout(r, leaseMs * 2)); // the first lease would have expired by now
    const repeat = await ctx.queue.add('repeat', data);

    const slowDone = await ctx.waitForState(slow, ['completed', 'failed']);
    const repeatDone = await ctx.waitForState(repeat, ['completed', 'failed']);
    expect(slowDone.returnvalue).toBe('slow');
    expect(repeatDone.returnvalue).toBe('slow'); // a duplicate, answered with the recorded result
    const statuses = outcomes.map((o) => o.status);
    expect(statuses[0]).toBe('in-progress'); // the repeat, while the slow run was alive past its first lease
    expect(statuses.filter((s) => s === 'processed')).toHaveLength(1);
    expect(statuses.at(-1)).toBe('duplicate');
    expect(outcomes.some((o) => o.status === 'processed' && o.takeover)).toBe(false);
    expect(statuses).not.toContain('lease-lost');
  });
});
