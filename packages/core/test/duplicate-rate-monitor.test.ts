// The duplicate-rate monitor's two alerts: too many duplicates over the window, and none at all where
// retries are known to happen.
import { describe, expect, it } from 'vitest';
import { DedupProcessor, DuplicateRateMonitor, InvalidOptionsError, type Outcome } from '@onceonly/core';

const processed = (scope: string, id: string): Outcome => ({ status: 'processed', scope, id, replayed: false, result: undefined, token: 1, takeover: false });
const duplicate = (scope: string, id: string): Outcome =>
  ({ status: 'duplicate', scope, id, replayed: true, result: undefined, record: { state: 'completed', token: 1, claimedAt: 0, updatedAt: 0 } }) as Outcome;

function recorded(monitor: DuplicateRateMonitor) {
  const events: string[] = [];
  monitor.on('high', (e) => events.push(`high ${e.scope} ${e.duplicates}/${e.messages}`));
  monitor.on('zero', (e) => events.push(`zero ${e.scope} ${e.messages}`));
  monitor.on('cleared', (e) => events.push(`cleared ${e.alert} ${e.scope}`));
  return events;
}

describe('DuplicateRateMonitor', () => {
  it('raises "high" once when duplicates exceed the threshold over the window, and clears at half of it', () => {
    let now = 1_000_000;
    const monitor = new DuplicateRateMonitor({ windowMs: 60_000, threshold: 0.1, minMessages: 50, now: () => now });
    const events = recorded(monitor);
    // 5 % duplicates: fine.
    for (let i = 0; i < 100; i++) monitor.observe(i % 20 === 0 ? duplicate('a', `d${i}`) : processed('a', `m${i}`));
    expect(events).toEqual([]);
    // A retry storm: every message twice.
    for (let i = 0; i < 40; i++) {
      monitor.observe(processed('a', `s${i}`));
      monitor.observe(duplicate('a', `s${i}`));
    }
    expect(events).toHaveLength(1);
    expect(events[0]).toMatch(/^high a \d+\/\d+$/);
    expect(monitor.snapshot()[0]).toMatchObject({ scope: 'a', high: true });
    expect(monitor.snapshot()[0]!.rate).toBeGreaterThan(0.1);
    // The window slides past the storm; fresh deliveries bring the rate down.
    now += 70_000;
    for (let i = 0; i < 20; i++) monitor.observe(processed('a', `n${i}`));
    expect(events.at(-1)).toBe('cleared high a');
    expect(monitor.snapshot()[0]).toMatchObject({ rate: 0, duplicates: 0, messages: 20, high: false });
  });

  it('does not judge a window with fewer than minMessages deliveries', () => {
    const monitor = new DuplicateRateMonitor({ minMessages: 100 });
    const events = recorded(monitor);
    for (let i = 0; i < 30; i++) monitor.observe(duplicate('a', `d${i}`));
    expect(events).toEqual([]);
    expect(monitor.snapshot()[0]!.rate).toBe(1);
  });

  it('keeps scopes apart', () => {
    const monitor = new DuplicateRateMonitor({ minMessages: 10 });
    const events = recorded(monitor);
    for (let i = 0; i < 20; i++) {
      monitor.observe(processed('calm', `c${i}`));
      monitor.observe(i % 2 ? duplicate('storm', `s${i}`) : processed('storm', `s${i}`));
    }
    expect(events).toEqual([expect.stringMatching(/^high storm /)]);
  });

  it('raises "zero" after afterMessages fresh deliveries in a row where duplicates are expected; a duplicate clears it', () => {
    const monitor = new DuplicateRateMonitor({ expectDuplicates: { afterMessages: 500 } });
    const events = recorded(monitor);
    for (let i = 0; i < 499; i++) monitor.observe(processed('a', `m${i}`));
    expect(events).toEqual([]);
    monitor.observe(processed('a', 'm499'));
    expect(events).toEqual(['zero a 500']);
    for (let i = 0; i < 1_000; i++) monitor.observe(processed('a', `n${i}`));
    expect(events).toEqual(['zero a 500']); // once per episode
    expect(monitor.snapshot()[0]).toMatchObject({ zero: true, sinceDuplicate: 1_500 });
    monitor.observe(duplicate('a', 'n1'));
    expect(events).toEqual(['zero a 500', 'cleared zero a']);
    expect(monitor.snapshot()[0]).toMatchObject({ zero: false, sinceDuplicate: 0 });
  });

  it('"zero" is off unless duplicates are expected', () => {
    const monitor = new DuplicateRateMonitor();
    const events = recorded(monitor);
    for (let i = 0; i < 20_000; i++) monitor.observe(processed('a', `m${i}`));
    expect(events).toEqual([]);
    expect(monitor.zeroAfter).toBeUndefined();
  });

  it('counts shadow-mode duplicates, ignores outcomes that are decided later', () => {
    const monitor = new DuplicateRateMonitor();
    monitor.observe({ ...processed('a', 'm1'), shadowOf: 'duplicate' } as Outcome);
    monitor.observe({ status: 'in-progress', scope: 'a', id: 'm2', replayed: false } as Outcome);
    monitor.observe({ status: 'failed', scope: 'a', id: 'm3', replayed: false } as Outcome);
    monitor.observe(processed('a', 'm4'));
    expect(monitor.snapshot()).toEqual([{ scope: 'a', rate: 0.5, duplicates: 1, messages: 2, sinceDuplicate: 1, high: false, zero: false }]);
  });

  it('watch() follows a processor\'s outcomes', async () => {
    const monitor = new DuplicateRateMonitor({ minMessages: 4, threshold: 0.25 });
    const events = recorded(monitor);
    const processor = new DedupProcessor({ scope: 'jobs' });
    const stop = monitor.watch(processor);
    for (const id of ['a', 'b', 'a', 'c', 'a']) await processor.process({ id }, () => 1);
    expect(events).toEqual(['high jobs 2/5']);
    stop();
    await processor.process({ id: 'a' }, () => 1);
    expect(monitor.snapshot()[0]!.messages).toBe(5);
  });

  it('refuses wrong options, naming them', () => {
    expect(() => new DuplicateRateMonitor({ threshold: 1.5 })).toThrow(/"threshold"/);
    expect(() => new DuplicateRateMonitor({ windowMs: 0 })).toThrow(InvalidOptionsError);
    expect(() => new DuplicateRateMonitor({ expectDuplicates: { afterMessages: 0 } })).toThrow(/afterMessages/);
    expect(() => new DuplicateRateMonitor({ expectDuplicates: true as never })).toThrow(/expectDuplicates/);
  });
});
