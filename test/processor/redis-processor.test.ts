import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it, vi } from 'vitest';
import { DedupProcessor, StoreUnavailableError, uuidv7, type HandlerContext } from '@onceonly/core';
import { RedisStore } from '@onceonly/redis';
import { startRedisServer } from '../support/redis-server.js';

const url = inject('redisUrl');
const clients: Redis[] = [];
const connect = (target = url) => {
  const client = new Redis(target, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true });
  clients.push(client);
  return client;
};
afterAll(() => {
  for (const client of clients) client.disconnect();
});

async function redisProcessor(options: Partial<ConstructorParameters<typeof DedupProcessor>[0]> = {}) {
  const client = connect();
  await client.connect();
  const store = new RedisStore({ client, prefix: `proc-${uuidv7()}` });
  return { processor: new DedupProcessor({ scope: 'emails', store, ...options }), store, client };
}

describe('DedupProcessor on a real Redis', () => {
  it('runs the handler once for five deliveries; duplicates get the recorded result', async () => {
    const { processor } = await redisProcessor({ recordResults: true });
    const handler = vi.fn(async (ctx: HandlerContext) => ({ messageId: ctx.id, at: 1 }));
    const outcomes = [];
    for (let i = 0; i < 5; i++) outcomes.push(await processor.process({ id: 'order-1', payload: { n: 1 } }, handler));
    expect(handler).toHaveBeenCalledOnce();
    expect(outcomes.map((o) => o.status)).toEqual(['processed', 'duplicate', 'duplicate', 'duplicate', 'duplicate']);
    expect(outcomes[4]).toMatchObject({ replayed: true, result: { messageId: 'order-1', at: 1 } });
  });

  it('processors on separate connections: one runs, the other sees in-progress, then duplicate', async () => {
    const prefix = `shared-${uuidv7()}`;
    const [aClient, bClient] = [connect(), connect()];
    await Promise.all([aClient.connect(), bClient.connect()]);
    const a = new DedupProcessor({ scope: 'emails', store: new RedisStore({ client: aClient, prefix }) });
    const b = new DedupProcessor({ scope: 'emails', store: new RedisStore({ client: bClient, prefix }) });
    let release!: () => void;
    const started = new Promise<void>((resolve) => {
      void a.process({ id: 'm' }, () => {
        resolve();
        return new Promise<void>((done) => (release = done));
      }).then((outcome) => expect(outcome.status).toBe('processed'));
    });
    await started;
    const handler = vi.fn();
    expect((await b.process({ id: 'm' }, handler)).status).toBe('in-progress');
    release();
    await vi.waitFor(async () => expect((await b.process({ id: 'm' }, handler)).status).toBe('duplicate'));
    expect(handler).not.toHaveBeenCalled();
  });

  it('a batch failing at message k commits nothing past k and releases the rest in Redis', async () => {
    const { processor, store } = await redisProcessor();
    const ids = ['a', 'b', 'c', 'd'];
    const batch = await processor.processBatch(ids.map((id) => ({ id })), (ctx) => {
      if (ctx.id === 'c') throw new Error('downstream 503');
    });
    expect(batch.done).toBe(2);
    expect((await store.get('emails', 'b'))?.state).toBe('completed');
    expect(await store.get('emails', 'c')).toBeUndefined();
    expect(await store.get('emails', 'd')).toBeUndefined();
  });

  it('Redis down: fails closed with a typed retriable error, runs nothing, marks nothing', async () => {
    const server = await startRedisServer();
    try {
      const client = connect(server.url);
      await client.connect();
      const prefix = `down-${uuidv7()}`;
      const processor = new DedupProcessor({ scope: 'emails', store: new RedisStore({ client, prefix }) });
      expect((await processor.process({ id: 'before' }, () => 1)).status).toBe('processed');

      await server.kill();
      const handler = vi.fn();
      const outcome = await processor.process({ id: 'during' }, handler);
      expect(outcome).toMatchObject({ status: 'store-unavailable', handlerRan: false });
      expect(outcome.status === 'store-unavailable' && outcome.error).toBeInstanceOf(StoreUnavailableError);
      await expect(processor.execute({ id: 'during' }, handler)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE', retriable: true });
      const batch = await processor.processBatch([{ id: 'x' }, { id: 'y' }], handler);
      expect(batch).toMatchObject({ done: 0, outcomes: [{ status: 'store-unavailable' }] });
      expect(handler).not.toHaveBeenCalled();
      expect(processor.stats()).toMatchObject({ processed: 1, 'store-unavailable': 3 });
    } finally {
      await server.stop();
    }
  });

  it('Redis lost after the handler ran: the completion is not recorded and the outcome says so', async () => {
    const server = await startRedisServer();
    try {
      const client = connect(server.url);
      await client.connect();
      const processor = new DedupProcessor({ scope: 'emails', store: new RedisStore({ client, prefix: `late-${uuidv7()}` }), completeAttempts: 2 });
      const outcome = await processor.process({ id: 'm' }, async () => {
        await server.kill();
        return 'effect applied';
      });
      expect(outcome).toMatchObject({ status: 'store-unavailable', handlerRan: true });
    } finally {
      await server.stop();
    }
  });
});
