// Audit item 4: a repeated ID inside one batch with a different payload is a conflict, exactly as two
// separate deliveries would be; `onConflict` decides, everywhere.
import { describe, expect, it, vi } from 'vitest';
import { DedupProcessor, PayloadConflictError } from '@onceonly/core';

const scope = 'repeats';

describe('processBatch: an ID repeated with another payload', () => {
  it('reject (default): the repeat is a conflict and stops the batch there, like two separate calls', async () => {
    const batchProcessor = new DedupProcessor({ scope });
    const handler = vi.fn(() => 'ok');
    const batch = await batchProcessor.processBatch(
      [
        { id: 'a', payload: 'A' },
        { id: 'a', payload: 'B' },
        { id: 'c', payload: 'C' },
      ],
      handler,
    );
    expect(batch.outcomes.map((o) => o.status)).toEqual(['processed', 'conflict']);
    expect(batch.done).toBe(1);
    const conflict = batch.outcomes[1]!;
    expect(conflict.status === 'conflict' && conflict.error).toBeInstanceOf(PayloadConflictError);
    expect(handler).toHaveBeenCalledTimes(1);

    const separate = new DedupProcessor({ scope });
    await separate.process({ id: 'a', payload: 'A' }, handler);
    expect((await separate.process({ id: 'a', payload: 'B' }, handler)).status).toBe('conflict');
  });

  it('the same payload repeated is a duplicate answered by its first occurrence', async () => {
    const p = new DedupProcessor({ scope, recordResults: true });
    const batch = await p.processBatch([{ id: 'a', payload: { n: 1 } }, { id: 'a', payload: { n: 1 } }], () => 'r');
    expect(batch.outcomes.map((o) => o.status)).toEqual(['processed', 'duplicate']);
    expect(batch.outcomes[1]).toMatchObject({ replayed: true, result: 'r' });
    expect(batch.outcomes[1]).not.toHaveProperty('conflict');
    expect(batch.done).toBe(2);
  });

  it('onConflict "duplicate": the repeat is a duplicate flagged as a conflict', async () => {
    const p = new DedupProcessor({ scope, onConflict: 'duplicate' });
    const batch = await p.processBatch([{ id: 'a', payload: 'A' }, { id: 'a', payload: 'B' }], () => 'r');
    expect(batch.outcomes.map((o) => o.status)).toEqual(['processed', 'duplicate']);
    expect(batch.outcomes[1]).toMatchObject({ conflict: true });
    expect(batch.done).toBe(2);
  });

  it('onConflict "process": the repeat runs unprotected, flagged as a conflict', async () => {
    const p = new DedupProcessor({ scope, onConflict: 'process' });
    const seen: unknown[] = [];
    const batch = await p.processBatch([{ id: 'a', payload: 'A' }, { id: 'a', payload: 'B' }], (ctx) => seen.push(ctx.payload));
    expect(batch.outcomes.map((o) => o.status)).toEqual(['processed', 'processed']);
    expect(batch.outcomes[1]).toMatchObject({ conflict: true, token: 0 });
    expect(seen).toEqual(['A', 'B']);
  });

  it('a repeat whose first occurrence is already completed in the store conflicts the same way', async () => {
    const p = new DedupProcessor({ scope });
    await p.process({ id: 'a', payload: 'A' }, () => 1);
    const batch = await p.processBatch([{ id: 'a', payload: 'A' }, { id: 'a', payload: 'B' }], () => 2);
    expect(batch.outcomes.map((o) => o.status)).toEqual(['duplicate', 'conflict']);
    expect(batch.done).toBe(1);
  });
});
