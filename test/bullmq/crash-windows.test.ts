import { addStamped, stamp } from '@onceonly/bullmq';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { BullmqTestContext } from './bullmq-test-context.js';

// Short BullMQ locks and onceonly leases, so a killed worker's job is taken over within seconds.
const FAST = { LOCK_MS: 1_000, STALLED_MS: 500, LEASE_MS: 1_500, RETRY_MS: 200 };

let ctx: BullmqTestContext;
afterEach(async () => {
  await ctx?.close();
});

async function crashAndTakeOver(mode: string, point: string) {
  ctx = new BullmqTestContext(inject('redisUrl'));
  const first = await ctx.startWorker({ ...FAST, NAME: 'first', MODE: mode });
  const data = stamp({ payment: 7 });
  const job = await addStamped(ctx.queue, 'charge', data, { attempts: 3 });
  const at = await first.at(point);
  await first.kill();
  const second = await ctx.startWorker({ ...FAST, NAME: 'second' });
  const done = await ctx.waitForState(job, ['completed', 'failed'], 30_000);
  return { first, second, at, done, id: data.onceonlyId! };
}

describe('BullMQ crash windows (SIGKILL, then a second worker after the stalled-job check)', () => {
  it('(a) killed before the side effect: the next worker applies it exactly once', async () => {
    const { second, done, id } = await crashAndTakeOver('crash-before-effect', 'start');
    expect(await done.getState()).toBe('completed');
    expect(done.returnvalue).toMatchObject({ by: 'second' });
    expect(await ctx.effects()).toEqual({ [id]: 1 });
    // The first run held the lease when it died: the second had to take it over once it expired.
    expect(second.outcomes().at(-1)).toMatchObject({ status: 'processed', takeover: true });
  });

  it('(b) killed after completion was recorded, before BullMQ acked: the re-run is a duplicate', async () => {
    const { second, done, id } = await crashAndTakeOver('crash-after-complete', 'after-complete');
    expect(await done.getState()).toBe('completed');
    const firstRun = await ctx.workers[0]!.at('start');
    expect(done.returnvalue).toEqual({ by: 'first', token: firstRun.data.token }); // the recorded result
    expect(await ctx.effects()).toEqual({ [id]: 1 });
    expect(second.outcomes()).toEqual([{ status: 'duplicate', id, takeover: false, replayed: true }]);
    expect(second.lines.some((l) => l.point === 'start')).toBe(false);
  });

  it('(c) killed between side effect and completion: re-run after the lease expired; the fencing token refuses the stale write', async () => {
    const { second, at, done, id } = await crashAndTakeOver('crash-after-effect', 'after-effect');
    expect(await done.getState()).toBe('completed');
    const rerun = await second.at('start');
    // The documented window: the effect ran twice, the second time only as a takeover of an expired lease.
    expect(rerun.data.takeover).toBe(true);
    expect(rerun.data.token as number).toBeGreaterThan(at.data.token as number);
    // The lease was last extended at most one heartbeat (leaseMs / 3) before the kill.
    expect((rerun.data.at as number) - (at.data.at as number)).toBeGreaterThanOrEqual(FAST.LEASE_MS - FAST.LEASE_MS / 3);
    expect(await ctx.effects()).toEqual({ [id]: 2 });

    // A write guarded by the token keeps the newer owner's value and refuses the stale token.
    const fenced = `${ctx.ledger}:fenced:${id}`;
    expect(await ctx.redis.hgetall(fenced)).toEqual({ fence: String(rerun.data.token), value: 'second' });
    const refused = await ctx.redis.eval(
      `local f = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
       if tonumber(ARGV[1]) <= f then return 0 end
       redis.call('HSET', KEYS[1], 'fence', ARGV[1], 'value', ARGV[2]) return 1`,
      1,
      fenced,
      String(at.data.token),
      'first (stale)',
    );
    expect(refused).toBe(0);
    expect(await ctx.redis.hget(fenced, 'value')).toBe('second');
  });
});
