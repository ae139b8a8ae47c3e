import { MemoryStore, uuidv7 } from '@onceonly/core';
import { compare, rate, type Row } from './table.js';

const LEASE = 30_000;
const WINDOW = 86_400_000;

function ids(n: number): string[] {
  return Array.from({ length: n }, () => uuidv7());
}

/** claim + complete per ID on the memory store, one at a time and in batches of 100, against a bare Map. */
export async function memoryThroughput(n: number, rounds: number, progress: (s: string) => void): Promise<Row[]> {
  const rows: Row[] = [];
  const baseline = async () => {
    const list = ids(n);
    const map = new Map<string, number>();
    return rate(n, async () => {
      for (const id of list) {
        if (map.get(id) === undefined) map.set(id, 1);
        map.set(id, 2);
      }
    });
  };

  progress('memory store: claim+complete, single');
  const single = await compare(rounds, async () => {
    const list = ids(n);
    const store = new MemoryStore({ capacity: n });
    return rate(n, async () => {
      for (const id of list) {
        const claim = await store.claim({ scope: 'bench', id, leaseMs: LEASE, windowMs: WINDOW });
        if (claim.status !== 'acquired') throw new Error('bench: unexpected claim answer');
        await store.complete({ scope: 'bench', id, token: claim.token, windowMs: WINDOW });
      }
    });
  }, baseline);
  rows.push({ group: 'memory', name: 'claim+complete, single', ...single, baselineName: 'Map get+set loop', unit: 'ops/s',
    target: { text: '≥ 1 M/s', met: (r) => r.value >= 1e6 } });

  progress('memory store: claim+complete, batches of 100');
  const batched = await compare(rounds, async () => {
    const list = ids(n);
    const store = new MemoryStore({ capacity: n });
    return rate(n, async () => {
      for (let i = 0; i < list.length; i += 100) {
        const batch = list.slice(i, i + 100);
        const claims = await store.claimMany(batch.map((id) => ({ scope: 'bench', id, leaseMs: LEASE, windowMs: WINDOW })));
        await store.completeMany(
          batch.map((id, k) => {
            const claim = claims[k]!;
            if (claim.status !== 'acquired') throw new Error('bench: unexpected claim answer');
            return { scope: 'bench', id, token: claim.token, windowMs: WINDOW };
          }),
        );
      }
    });
  }, baseline);
  rows.push({ group: 'memory', name: 'claim+complete, batches of 100', ...batched, baselineName: 'Map get+set loop', unit: 'ops/s',
    target: { text: '≥ 1 M/s', met: (r) => r.value >= 1e6 } });
  return rows;
}

/**
 * Heap bytes per retained ID with 1 M completed IDs held, the ID strings included (the store keeps
 * them), against a `Map<string, number>` holding the same kind of IDs.
 */
export async function memoryFootprint(n: number, progress: (s: string) => void): Promise<Row[]> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('bench: run node with --expose-gc for the memory footprint');
  const heap = () => {
    gc();
    gc();
    const usage = process.memoryUsage();
    return usage.heapUsed + usage.arrayBuffers;
  };
  const keep: unknown[] = [];

  progress(`memory store: bytes per retained ID at ${n} IDs`);
  let before = heap();
  const map = new Map<string, number>();
  for (let i = 0; i < n; i++) map.set(uuidv7(), i);
  keep.push(map);
  const mapBytes = (heap() - before) / n;

  before = heap();
  const store = new MemoryStore({ capacity: n });
  for (let i = 0; i < n; i++) {
    const id = uuidv7();
    const claim = await store.claim({ scope: 'bench', id, leaseMs: LEASE, windowMs: WINDOW });
    if (claim.status !== 'acquired') throw new Error('bench: unexpected claim answer');
    await store.complete({ scope: 'bench', id, token: claim.token, windowMs: WINDOW });
  }
  keep.push(store);
  const storeBytes = (heap() - before) / n;
  if (store.stats().size !== n) throw new Error('bench: the store did not retain every ID');
  keep.length = 0;
  return [
    { group: 'memory', name: `bytes per retained ID (${n / 1e6} M UUIDv7 IDs)`, value: storeBytes, baseline: mapBytes,
      baselineName: 'Map<string, number> of the IDs', unit: 'bytes', target: { text: '≤ 150 B', met: (r) => r.value <= 150 } },
  ];
}
