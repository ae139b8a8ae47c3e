import type { DedupStore } from '@onceonly/core';
import type { Redis } from 'ioredis';

/** Counts store calls: each RedisStore method call is one round trip (for a one-scope batch). */
export function countingStore<S extends DedupStore>(store: S): { store: S; calls: () => number } {
  let calls = 0;
  const proxy = new Proxy(store, {
    get(target, property) {
      const value = Reflect.get(target, property, target) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (property !== 'close') calls++;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { store: proxy, calls: () => calls };
}

/** Removes the keys a benchmark wrote under `prefix`. */
export async function deleteByPrefix(client: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await client.unlink(...keys);
  } while (cursor !== '0');
}
