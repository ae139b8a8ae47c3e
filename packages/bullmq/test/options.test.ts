import { createWorker, onceonly } from '@onceonly/bullmq';
import { DedupProcessor, InvalidOptionsError, MemoryStore } from '@onceonly/core';
import { describe, expect, it } from 'vitest';

const handler = async () => 'ok';

/** The error `build` throws (or fails the test when it throws none). */
function thrownBy(build: () => unknown): unknown {
  try {
    build();
  } catch (error) {
    return error;
  }
  throw new Error('expected the options to be refused at construction');
}

describe('onceonly options are validated at construction (issue 9, item 10)', () => {
  // Before the fix, without `scope` the processor options were only checked at the first job: the wrapper
  // was accepted and every job then failed, burning its attempts.
  it.each([
    ['an unknown option', { typo: 1 }, /"typo"/],
    ['a wrong leaseMs', { leaseMs: 1 }, /"leaseMs"/],
    ['a wrong windowMs', { windowMs: -5 }, /"windowMs"/],
    ['a wrong onConflict', { onConflict: 'ignore' }, /"onConflict"/],
    ['a store that is not a store', { store: {} }, /"store"/],
    ['reconcile without onTakeover: "reconcile"', { reconcile: () => 'done' }, /"onTakeover"/],
    ['a heartbeat longer than the lease', { leaseMs: 1_000, heartbeatMs: 2_000 }, /"heartbeatMs"/],
    ['an empty scope', { scope: '' }, /"scope"/],
    ['a wrong closeGraceMs', { closeGraceMs: -1 }, /"closeGraceMs"/],
  ])('%s throws InvalidOptionsError naming it, with or without a scope', (_what, options, named) => {
    for (const withScope of [{}, { scope: 'orders' }]) {
      const error = thrownBy(() => onceonly(handler, { ...withScope, ...options } as never));
      expect(error).toBeInstanceOf(InvalidOptionsError);
      expect((error as InvalidOptionsError).code).toBe('INVALID_OPTIONS');
      expect((error as Error).message).toMatch(named);
    }
  });

  it('checking the options without a scope does not fix the scope: it still comes from each job\'s queue (control)', async () => {
    const wrapped = onceonly(handler, { leaseMs: 1_000 });
    expect(wrapped.processors()).toEqual([]);
    for (const queueName of ['a', 'b']) {
      await wrapped({ id: '1', name: 't', queueName, data: { onceonlyId: 'x' }, attemptsMade: 0 } as never);
    }
    expect(wrapped.processors().map((p) => p.scope)).toEqual(['a', 'b']);
    await wrapped.close();
  });

  it('with a shared processor, any processor option (or unknown one) is refused, named', () => {
    const processor = new DedupProcessor({ scope: 'shared' });
    for (const [options, named] of [
      [{ processor, typo: 1 }, /"typo"/],
      [{ processor, leaseMs: 5_000 }, /"leaseMs"/],
      [{ processor, store: new MemoryStore() }, /"store"/],
    ] as const) {
      const error = thrownBy(() => onceonly(handler, options as never));
      expect(error).toBeInstanceOf(InvalidOptionsError);
      expect((error as Error).message).toMatch(named);
    }
    expect(thrownBy(() => onceonly(handler, { processor: {} as never }))).toBeInstanceOf(InvalidOptionsError);
  });

  it('options that are not an object are refused', () => {
    for (const options of ['stamp', 42, [1]]) {
      expect(thrownBy(() => onceonly(handler, options as never))).toBeInstanceOf(InvalidOptionsError);
    }
  });

  it('createWorker refuses the same options before it makes a Worker (no connection is opened)', async () => {
    for (const [options, named] of [
      [{ typo: 1 }, /"typo"/],
      [{ leaseMs: 1 }, /"leaseMs"/],
      [{ processor: new DedupProcessor({ scope: 'x' }), typo: 1 }, /"typo"/],
      [{ closeGraceMs: 'soon' }, /"closeGraceMs"/],
    ] as const) {
      // The port is never dialled: the options fail first (a Worker built by mistake is closed at once).
      let error: unknown;
      try {
        const worker = createWorker('q', handler, { connection: { host: '127.0.0.1', port: 1 }, onceonly: options as never });
        await worker.close(true);
      } catch (thrown) {
        error = thrown;
      }
      expect(error).toBeInstanceOf(InvalidOptionsError);
      expect((error as Error).message).toMatch(named);
    }
  });

  it('valid options still build a wrapper, with or without a scope (control)', async () => {
    const a = onceonly(handler, { leaseMs: 1_000, recordResults: true });
    const b = onceonly(handler, { scope: 'orders', leaseMs: 1_000, closeGraceMs: 0 });
    const c = onceonly(handler, { processor: new DedupProcessor({ scope: 'shared' }), id: 'jobId', coalesce: false });
    expect([a, b, c].every((w) => typeof w === 'function')).toBe(true);
    await Promise.all([a.close(), b.close(), c.close()]);
  });
});
