// Regression tests on a real Redis for holes an audit found in the store contract and the processor.
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it, vi } from 'vitest';
import { DedupProcessor, InvalidOptionsError, TakeoverDeadLetterError, uuidv7, type Outcome } from '@onceonly/core';
import { RedisStore } from '@onceonly/redis';
import { startRedisServer } from '../support/redis-server.js';

const url = inject('redisUrl');
const clients: Redis[] = [];
async function connect(target = url): Promise<Redis> {
  const client = new Redis(target, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true });
  clients.push(client);
  await client.connect();
  return client;
}
afterAll(() => {
  for (const client of clients) client.disconnect();
});

describe('a released takeover stays suspect (Redis)', () => {
  it('A dies after its effect; B takes over in a batch that fails earlier; C still dead-letters', async () => {
    const prefix = `suspect-${uuidv7()}`;
    const processor = async () =>
      new DedupProcessor({ scope: 'orders', store: new RedisStore({ client: await connect(), prefix }), onTakeover: 'dead-letter', leaseMs: 300, heartbeatMs: 100 });
    const effects: string[] = [];

    // A claims and applies the effect, then "dies": its lease is never extended or completed.
    const storeA = new RedisStore({ client: await connect(), prefix });
    const a = await storeA.claim({ scope: 'orders', id: 'order-1', leaseMs: 300, windowMs: 86_400_000 });
    expect(a.status).toBe('acquired');
    effects.push('A');
    await new Promise((resolve) => setTimeout(resolve, 400));

    const b = await processor();
    const batch = await b.processBatch([{ id: 'other' }, { id: 'order-1' }], (ctx) => {
      if (ctx.id === 'other') throw new Error('downstream 503');
      effects.push('B');
    });
    expect(batch.done).toBe(0);

    const c = await processor();
    const outcome = await c.process({ id: 'order-1' }, () => {
      effects.push('C');
    });
    expect(outcome).toMatchObject({ status: 'failed', terminal: true, remembered: true });
    expect(outcome.status === 'failed' && outcome.error).toBeInstanceOf(TakeoverDeadLetterError);
    expect(effects).toEqual(['A']);
  });
});

describe('option bounds (Redis)', () => {
  it('a window the store cannot keep fails at construction, not as a retriable error on every call', async () => {
    const store = new RedisStore({ client: await connect(), prefix: `bounds-${uuidv7()}` });
    expect(() => new DedupProcessor({ scope: 'orders', store, windowMs: 1e13 })).toThrow(InvalidOptionsError);
    const year = new DedupProcessor({ scope: 'orders', store, windowMs: 366 * 86_400_000 });
    expect((await year.process({ id: 'm' }, () => 1)).status).toBe('processed');
    expect((await year.process({ id: 'm' }, () => 1)).status).toBe('duplicate');
  });
});

describe('store lost mid-batch', () => {
  it('stops the batch at the first sign of the outage: nothing more runs, and a store-error event fires', async () => {
    const server = await startRedisServer();
    try {
      const client = await connect(server.url);
      const processor = new DedupProcessor({ scope: 'emails', store: new RedisStore({ client, prefix: `lost-${uuidv7()}` }), completeAttempts: 1 });
      const storeErrors = vi.fn();
      processor.on('store-error', storeErrors);
      const outcomes = new Map<string, Outcome>();
      processor.on('outcome', (outcome) => outcomes.set(outcome.id, outcome));
      const ran: string[] = [];
      const ids = Array.from({ length: 10 }, (_, i) => `m${i}`);
      const batch = await processor.processBatch(ids.map((id) => ({ id })), async (ctx) => {
        ran.push(ctx.id);
        if (ctx.id === 'm0') {
          const closed = new Promise((resolve) => client.once('close', resolve));
          await server.kill();
          await closed;
        }
      });
      expect(ran).toEqual(['m0']);
      expect(batch.done).toBe(0);
      // m0 ran but its completion could not be recorded; m1 was stopped before its handler.
      expect(batch.outcomes).toEqual([expect.objectContaining({ status: 'store-unavailable', id: 'm0', handlerRan: true })]);
      expect(outcomes.get('m1')).toMatchObject({ status: 'store-unavailable', handlerRan: false });
      expect(storeErrors).toHaveBeenCalled();
      expect(storeErrors.mock.calls.map((call) => call[0].operation)).toContain('completeMany');
    } finally {
      await server.stop();
    }
  });
});
