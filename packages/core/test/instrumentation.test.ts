// The instrumentation hook: every message is started and ended once with its final outcome, and the
// handler runs inside `run()` (so a tracer can make the handler's own spans children of the message's).
import { describe, expect, it } from 'vitest';
import { DedupProcessor, InvalidOptionsError, MemoryStore, type Instrumentation, type MessageInfo, type Outcome } from '@onceonly/core';

function recorder() {
  const log: string[] = [];
  const infos: MessageInfo[] = [];
  let inside = false;
  const instrumentation: Instrumentation = {
    start(message) {
      infos.push(message);
      log.push(`start ${message.id}`);
      return {
        run: (handler) => {
          inside = true;
          try {
            return handler();
          } finally {
            inside = false;
          }
        },
        end: (outcome: Outcome<unknown>) => log.push(`end ${outcome.id} ${outcome.status}`),
      };
    },
  };
  return { instrumentation, log, infos, isInside: () => inside };
}

describe('instrumentation', () => {
  it('process(): start, the handler inside run(), end with the final outcome; a duplicate ends without running', async () => {
    const { instrumentation, log, infos, isInside } = recorder();
    const p = new DedupProcessor({ scope: 'traced', instrumentation });
    const seen: boolean[] = [];
    await p.process({ id: 'm1', carrier: { traceparent: '00-abc' }, attributes: { 'messaging.system': 'test' } }, () => seen.push(isInside()));
    await p.process({ id: 'm1' }, () => seen.push(isInside()));
    await p.process({ id: '' }, () => seen.push(isInside()));
    expect(seen).toEqual([true]);
    expect(log).toEqual(['start m1', 'end m1 processed', 'start m1', 'end m1 duplicate', 'start ', 'end  failed']);
    expect(infos[0]).toMatchObject({ scope: 'traced', id: 'm1', carrier: { traceparent: '00-abc' }, attributes: { 'messaging.system': 'test' } });
  });

  it('processBatch(): every started message ends once, completions included', async () => {
    const { instrumentation, log } = recorder();
    const p = new DedupProcessor({ scope: 'traced', instrumentation });
    await p.process({ id: 'b' }, () => 1);
    log.length = 0;
    const batch = await p.processBatch([{ id: 'a' }, { id: 'b' }, { id: 'a' }, { id: 'c' }], async () => 1, { concurrency: 2, ordering: 'none' });
    expect(batch.done).toBe(4);
    const ends = log.filter((l) => l.startsWith('end')).sort();
    expect(ends).toEqual(['end a duplicate', 'end a processed', 'end b duplicate', 'end c processed']);
    expect(log.filter((l) => l.startsWith('start'))).toHaveLength(4);
  });

  it('processBatch(): a message stopped by a failed claim round trip has its trace too', async () => {
    const { instrumentation, log } = recorder();
    const store = new MemoryStore();
    store.claimMany = () => Promise.reject(new Error('store down'));
    const p = new DedupProcessor({ scope: 'traced', store, instrumentation });
    const batch = await p.processBatch([{ id: 'a' }, { id: 'b' }], () => 1);
    expect(batch.done).toBe(0);
    expect(batch.outcomes.map((o) => o.status)).toEqual(['store-unavailable']);
    expect(log).toEqual(['start a', 'end a store-unavailable']);
  });

  it('refuses an instrumentation without start()', () => {
    expect(() => new DedupProcessor({ scope: 's', instrumentation: {} as never })).toThrow(InvalidOptionsError);
  });
});
