// Audit item 1: a takeover claim released without running (or after a retryable failure) must keep the
// record suspect, so the next delivery still goes through the takeover policy.
import { describe, expect, it, vi } from 'vitest';
import { DedupProcessor, MemoryStore, TakeoverDeadLetterError, type DedupProcessorOptions } from '@onceonly/core';

const scope = 'suspect';

/** A store where worker A claimed `id`, "applied" its effect and died: its lease has run out. */
async function afterDeadOwner(options: Partial<DedupProcessorOptions> = {}) {
  let now = Date.now();
  const store = new MemoryStore({ clock: () => now });
  await store.claim({ scope, id: 'm1', leaseMs: 1_000, windowMs: 60_000 });
  now += 2_000;
  const make = () => new DedupProcessor({ scope, store, windowMs: 60_000, leaseMs: 1_000, ...options });
  return { store, make, advance: (ms: number) => (now += ms) };
}

describe('suspect takeovers', () => {
  it('dead-letter still applies after a batch that took the ID over stopped at an earlier message', async () => {
    const { make } = await afterDeadOwner({ onTakeover: 'dead-letter' });
    const b = make();
    const batch = await b.processBatch([{ id: 'other' }, { id: 'm1' }], (ctx) => {
      if (ctx.id === 'other') throw new Error('transient');
      return 'applied';
    });
    expect(batch.done).toBe(0);
    const effects = vi.fn(() => 'applied again');
    const c = make();
    const outcome = await c.process({ id: 'm1' }, effects);
    expect(outcome).toMatchObject({ status: 'failed', terminal: true, remembered: true });
    expect(outcome.status === 'failed' && outcome.error).toBeInstanceOf(TakeoverDeadLetterError);
    expect(effects).not.toHaveBeenCalled();
  });

  it('reconcile still applies after a takeover run whose handler threw a retryable error', async () => {
    const reconcile = vi.fn(() => 'done' as const);
    const { store, make } = await afterDeadOwner({ onTakeover: 'reconcile', reconcile: () => 'run' });
    const first = await make().process({ id: 'm1' }, () => {
      throw new Error('flaky downstream');
    });
    expect(first).toMatchObject({ status: 'failed', terminal: false });
    const handler = vi.fn();
    const c = new DedupProcessor({ scope, store, windowMs: 60_000, leaseMs: 1_000, onTakeover: 'reconcile', reconcile });
    const outcome = await c.process({ id: 'm1' }, handler);
    expect(reconcile).toHaveBeenCalledOnce();
    expect(outcome).toMatchObject({ status: 'duplicate', reconciled: true });
    expect(handler).not.toHaveBeenCalled();
  });

  it('a retry takeover that failed retryably is reported as a takeover again on the next delivery', async () => {
    const { make } = await afterDeadOwner();
    const p = make();
    const seen: boolean[] = [];
    await p.process({ id: 'm1' }, (ctx) => {
      seen.push(ctx.takeover);
      throw new Error('transient');
    });
    const outcome = await p.process({ id: 'm1' }, (ctx) => {
      seen.push(ctx.takeover);
      return 'ok';
    });
    expect(outcome).toMatchObject({ status: 'processed', takeover: true });
    expect(seen).toEqual([true, true]);
    expect(p.stats().takeovers).toBe(2);
  });

  it('a batch that goes stale before reaching a taken-over ID leaves it suspect', async () => {
    const { make } = await afterDeadOwner({ onTakeover: 'dead-letter' });
    let stale = false;
    const batch = await make().processBatch(
      [{ id: 'a' }, { id: 'm1' }],
      () => {
        stale = true; // a rebalance while 'a' runs
        return 'ok';
      },
      { shouldContinue: () => !stale },
    );
    expect(batch.done).toBe(1);
    const outcome = await make().process({ id: 'm1' }, () => 'ran');
    expect(outcome.status === 'failed' && outcome.error).toBeInstanceOf(TakeoverDeadLetterError);
  });

  it('a plain retryable failure (no takeover) is not suspect: the next run is not a takeover', async () => {
    const p = new DedupProcessor({ scope, onTakeover: 'dead-letter' });
    await p.process({ id: 'm1' }, () => {
      throw new Error('transient');
    });
    expect(await p.process({ id: 'm1' }, (ctx) => ctx.takeover)).toMatchObject({ status: 'processed', result: false, takeover: false });
  });
});

