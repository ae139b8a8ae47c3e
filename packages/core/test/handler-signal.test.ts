// On Node 20 the handler context reads its signal through a getter, and the processor never reads it
// on the way of a handler that finishes (making one costs microseconds there). On any version, a
// handler that reads it late, after the abort, or through a copy of its context, sees the abort and
// its reason.
import { describe, expect, it } from 'vitest';
import { DedupProcessor, HandlerTimeoutError, MemoryStore, type HandlerContext } from '@onceonly/core';

describe('the handler context\'s signal', () => {
  it('read only after a timeout fired, it is aborted with the HandlerTimeoutError; a copy of the context carries it', async () => {
    const p = new DedupProcessor({ scope: 'lazy', store: new MemoryStore(), handlerTimeoutMs: 20 });
    let seen: { aborted: boolean; reason: unknown; copied: boolean } | undefined;
    await p.process({ id: 'm1' }, async (context: HandlerContext) => {
      await new Promise((resolve) => setTimeout(resolve, 60));
      const copy = { ...context };
      seen = { aborted: context.signal.aborted, reason: context.signal.reason, copied: copy.signal === context.signal };
    });
    expect(seen).toMatchObject({ aborted: true, copied: true });
    expect(seen?.reason).toBeInstanceOf(HandlerTimeoutError);
    await p.close();
  });

  it('read before the abort, it fires: the same in a batch with a timeout (each message its own signal)', async () => {
    const p = new DedupProcessor({ scope: 'lazy', store: new MemoryStore(), handlerTimeoutMs: 20 });
    const reasons: unknown[] = [];
    await p.processBatch([{ id: 'a' }, { id: 'b' }], ({ id, signal }) =>
      id === 'a'
        ? new Promise((_, reject) => signal.addEventListener('abort', () => reject((reasons[0] = signal.reason))))
        : signal.aborted,
    );
    expect(reasons[0]).toBeInstanceOf(HandlerTimeoutError);
    await p.close();
  });
});
