import { createHash, hash as oneShotHash, randomBytes } from 'node:crypto';
import { canonicalJson, DedupProcessor, fingerprintOf, MemoryStore, uuidv7 } from '@onceonly/core';
import { compare, rate, type Row } from './table.js';

const LEASE = 30_000;
const WINDOW = 86_400_000;

function ids(n: number): string[] {
  return Array.from({ length: n }, () => uuidv7());
}

/** The bare-Map loop every throughput row of this group is compared with. */
function mapLoop(n: number): () => Promise<number> {
  return async () => {
    const list = ids(n);
    const map = new Map<string, number>();
    return rate(n, async () => {
      for (const id of list) {
        if (map.get(id) === undefined) map.set(id, 1);
        map.set(id, 2);
      }
    });
  };
}

/** claim + complete per ID on the memory store, one at a time and in batches of 100, against a bare Map. */
export async function memoryThroughput(n: number, rounds: number, progress: (s: string) => void): Promise<Row[]> {
  const rows: Row[] = [];
  const baseline = mapLoop(n);
  const target = { text: '≥ 2 M/s', met: (r: Row) => r.value >= 2e6 };

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
  rows.push({ group: 'memory', name: 'claim+complete, single', ...single, baselineName: 'Map get+set loop', unit: 'ops/s', target });

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
  rows.push({ group: 'memory', name: 'claim+complete, batches of 100', ...batched, baselineName: 'Map get+set loop', unit: 'ops/s', target });

  // What bounds a claim: the store keys records by a salted SHA-256 of the ID, one per claim (an owner's
  // complete finds its record by token, without hashing). This row is that hash alone, as the store
  // computes it (19-byte salt and tag + the ID, one SHA-256 block for a UUID).
  progress('memory store: the SHA-256 key of an ID, alone');
  const salt = `${randomBytes(14).toString('base64url').slice(0, 18)}u`;
  const keyOnly = await compare(rounds, async () => {
    const list = ids(n);
    let sink = 0;
    const value = await rate(n, async () => {
      for (const id of list) sink ^= oneShotHash('sha256', salt + id, 'binary').charCodeAt(0);
    });
    if (sink === -1) throw new Error('unreachable');
    return value;
  }, baseline);
  rows.push({ group: 'memory', name: 'SHA-256 key of one ID (crypto.hash), alone', ...keyOnly, baselineName: 'Map get+set loop', unit: 'ops/s' });
  return rows;
}

/**
 * Heap and array-buffer bytes per retained ID with `n` completed IDs held, against a
 * `Map<string, number>` holding the same kind of IDs (UUIDv7 strings). The store keeps a 128-bit hash of
 * each ID, not the string; with `fingerprints`, each record also keeps a `fingerprintOf` fingerprint, as
 * the processor writes them for messages with a payload.
 */
export async function memoryFootprint(n: number, progress: (s: string) => void, options: { fingerprints?: boolean } = {}): Promise<Row[]> {
  const label = `${n / 1e6} M UUIDv7 IDs${options.fingerprints ? ', with fingerprints' : ''}`;
  progress(`memory store: bytes per retained ID, ${label}`);
  // Each measurement in its own function, so that what it built is garbage once it returns.
  const mapBytes = await bytesHeld(n, async () => {
    const map = new Map<string, number>();
    for (let i = 0; i < n; i++) map.set(uuidv7(), i);
    if (map.size !== n) throw new Error('bench: the baseline map lost IDs');
    return map;
  });
  const storeBytes = await bytesHeld(n, async () => {
    const store = new MemoryStore({ capacity: n });
    const fingerprints = options.fingerprints ? Array.from({ length: 1_000 }, (_, i) => fingerprintOf({ order: i })) : undefined;
    for (let i = 0; i < n; i++) {
      const id = uuidv7();
      const claim = await store.claim({ scope: 'bench', id, leaseMs: LEASE, windowMs: WINDOW, fingerprint: fingerprints?.[i % 1_000] });
      if (claim.status !== 'acquired') throw new Error('bench: unexpected claim answer');
      await store.complete({ scope: 'bench', id, token: claim.token, windowMs: WINDOW });
    }
    if (store.stats().size !== n) throw new Error('bench: the store did not retain every ID');
    return store;
  });
  return [
    { group: 'memory', name: `bytes per retained ID (${label})`, value: storeBytes, baseline: mapBytes,
      baselineName: 'Map<string, number> of the IDs', unit: 'bytes', target: options.fingerprints ? undefined : { text: '≤ 64 B', met: (r) => r.value <= 64 } },
  ];
}

/** Heap and array-buffer bytes per ID that `build` holds (what it returns is kept until measured). */
async function bytesHeld(n: number, build: () => Promise<unknown>): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('bench: run node with --expose-gc for the memory footprint');
  const heap = () => {
    gc();
    gc();
    const usage = process.memoryUsage();
    return usage.heapUsed + usage.arrayBuffers;
  };
  const before = heap();
  const held = await build();
  const bytes = (heap() - before) / n;
  if (held === undefined) throw new Error('unreachable'); // keeps `held` alive through the measurement
  return bytes;
}

/** The fingerprint as it was computed before issue 13: a streaming Hash object per payload. */
function streamingFingerprint(payload: unknown): string {
  const hash = createHash('sha256');
  if (payload instanceof Uint8Array) hash.update('b').update(payload);
  else if (typeof payload === 'string') hash.update('s').update(payload);
  else hash.update('j').update(canonicalJson(payload));
  return hash.digest('base64url').slice(0, 22);
}

/** `fingerprintOf` (one-shot `crypto.hash`) against the streaming code it replaced, same payloads, same run. */
export async function fingerprintThroughput(n: number, rounds: number, progress: (s: string) => void): Promise<Row[]> {
  const order = (i: number) => ({
    orderId: 1_000_000 + i,
    customer: { id: `c-${i % 977}`, tier: 'gold' },
    items: [{ sku: 'A-100', qty: 2, price: 9.99 }, { sku: 'B-7', qty: 1, price: 24.5 }],
    currency: 'EUR',
    createdAt: '2025-01-31T12:00:00.000Z',
  });
  const cases: [string, unknown[]][] = [
    [`${canonicalJson(order(0)).length} B JSON object`, Array.from({ length: 1_000 }, (_, i) => order(i))],
    ['256 B Buffer', Array.from({ length: 1_000 }, () => randomBytes(256))],
    ['4 KiB Buffer (streamed, as before)', Array.from({ length: 1_000 }, () => randomBytes(4_096))],
  ];
  const rows: Row[] = [];
  for (const [name, payloads] of cases) {
    for (const p of payloads.slice(0, 10)) {
      if (fingerprintOf(p) !== streamingFingerprint(p)) throw new Error('bench: fingerprintOf changed its output');
    }
    progress(`fingerprint: ${name}`);
    const run = (f: (payload: unknown) => string) => async () => {
      let sink = 0;
      const value = await rate(n, async () => {
        for (let i = 0; i < n; i++) sink ^= f(payloads[i % payloads.length]).charCodeAt(0);
      });
      if (sink === -1) throw new Error('unreachable');
      return value;
    };
    const measured = await compare(rounds, run(fingerprintOf), run(streamingFingerprint));
    rows.push({ group: 'memory', name: `fingerprintOf, ${name}`, ...measured, baselineName: 'streaming createHash (before)', unit: 'ops/s',
      target: { text: 'not slower than before', met: (r) => r.value >= 0.95 * r.baseline } });
  }
  return rows;
}

/**
 * `processBatch` on the memory store, batches of 500, fingerprints on (each message carries a ~200-byte
 * Buffer payload, as a Kafka message does), a handler that does nothing: the processor's own cost per
 * message (validation, fingerprint, claim, run, completion), against the bare-Map loop.
 */
export async function processBatchThroughput(n: number, rounds: number, progress: (s: string) => void): Promise<Row[]> {
  progress('memory store: processBatch, batches of 500, fingerprints on');
  const body = 'x'.repeat(150);
  const measured = await compare(rounds, async () => {
    const messages = ids(n).map((id, i) => ({ id, payload: Buffer.from(`{"n":${i},"b":"${body}"}`) }));
    const processor = new DedupProcessor({ scope: 'bench', store: new MemoryStore({ capacity: n }), windowMs: WINDOW });
    const noop = () => undefined;
    const value = await rate(n, async () => {
      for (let i = 0; i < n; i += 500) {
        const result = await processor.processBatch(messages.slice(i, i + 500), noop);
        if (result.done !== Math.min(500, n - i)) throw new Error('bench: a batch did not finish');
      }
    });
    await processor.close();
    return value;
  }, mapLoop(n));
  return [{ group: 'memory', name: 'processBatch(500), fingerprints on, no-op handler', ...measured, baselineName: 'Map get+set loop', unit: 'ops/s',
    target: { text: '≥ 1 M/s', met: (r) => r.value >= 1e6 } }];
}
