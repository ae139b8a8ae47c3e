// One round trip per call: a claim, and a batch of one scope, is one script call written in one
// socket write; a batch of several scopes is one pipeline (one write). Counted three ways on a
// throwaway server that nothing else talks to: the socket writes of the client, the commands MONITOR
// sees from the client's address, and the server's eval/evalsha call counters.
import { RedisStore } from '@onceonly/redis';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectRedis, startRedisServer, type LocalRedis } from '../support/redis-server.js';
import { randomPrefix } from './redis-test-context.js';

let server: LocalRedis;
let client: Redis;
let admin: Redis;
let store: RedisStore;

beforeAll(async () => {
  server = await startRedisServer();
  client = await connectRedis(server.url);
  admin = await connectRedis(server.url);
  store = new RedisStore({ client, prefix: randomPrefix() });
  // Warm up: the first script call on a connection is an EVAL that loads it; later ones are EVALSHA.
  // Warm every script used below, so each observed call is the steady-state EVALSHA.
  const warm = { scope: 'warm', id: 'up', leaseMs: 1000, windowMs: 1000 };
  await store.claim(warm);
  await store.claimMany([warm]);
  await store.completeMany([{ ...warm, token: 0 }]);
});
afterAll(async () => {
  client?.disconnect();
  admin?.disconnect();
  await server?.stop();
});

async function scriptCalls(): Promise<number> {
  const info = await admin.info('commandstats');
  let calls = 0;
  for (const match of info.matchAll(/^cmdstat_(eval|evalsha):calls=(\d+)/gm)) calls += Number(match[2]);
  return calls;
}

/** Runs `action` and reports what the client sent while it ran. */
async function observe(action: () => Promise<unknown>): Promise<{ writes: number; commands: string[]; scripts: number }> {
  const monitor = await admin.duplicate().monitor();
  const address = (await client.client('INFO')).match(/ addr=(\S+)/)![1]!;
  const commands: string[] = [];
  let markerSeen: () => void = () => {};
  const marker = `marker-${Math.random()}`;
  const seen = new Promise<void>((resolve) => (markerSeen = resolve));
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    if (source !== address) return;
    if (args[0]?.toLowerCase() === 'echo' && args[1] === marker) markerSeen();
    else commands.push(args[0]!.toLowerCase());
  });

  const scriptsBefore = await scriptCalls();
  const stream = client.stream as unknown as { write: (...args: unknown[]) => boolean };
  const write = stream.write;
  let writes = 0;
  stream.write = function (this: unknown, ...args: unknown[]) {
    writes++;
    return write.apply(this, args);
  };
  try {
    await action();
  } finally {
    stream.write = write;
  }
  const scripts = (await scriptCalls()) - scriptsBefore;
  await client.echo(marker); // MONITOR delivers in order: once the marker is in, so is everything before it
  await seen;
  monitor.disconnect();
  // The CLIENT INFO above precedes the action; keep only what the action sent.
  return { writes, commands: commands.filter((c) => c !== 'client'), scripts };
}

const claims = (n: number, scope = 'jobs', from = 0) =>
  Array.from({ length: n }, (_, i) => ({ scope, id: `id-${from + i}`, leaseMs: 30_000, windowMs: 60_000 }));

describe('round trips', () => {
  it('claim is one script call', async () => {
    const seen = await observe(() => store.claim({ scope: 'jobs', id: 'one', leaseMs: 1000, windowMs: 1000 }));
    expect(seen).toEqual({ writes: 1, commands: ['evalsha'], scripts: 1 });
  });

  it('claim of an existing (duplicate) ID is one script call too', async () => {
    const seen = await observe(() => store.claim({ scope: 'jobs', id: 'one', leaseMs: 1000, windowMs: 1000 }));
    expect(seen).toEqual({ writes: 1, commands: ['evalsha'], scripts: 1 });
  });

  it('claimMany and completeMany of 100 IDs of one scope are one script call each', async () => {
    let results: Awaited<ReturnType<typeof store.claimMany>> = [];
    const claimed = await observe(async () => {
      results = await store.claimMany(claims(100));
    });
    expect(claimed).toEqual({ writes: 1, commands: ['evalsha'], scripts: 1 });
    expect(results.every((r) => r.status === 'acquired')).toBe(true);

    const completes = results.map((r, i) => ({
      scope: 'jobs',
      id: `id-${i}`,
      token: r.status === 'acquired' ? r.token : -1,
      result: `{"i":${i}}`,
      windowMs: 60_000,
    }));
    let outcomes: string[] = [];
    const completed = await observe(async () => {
      outcomes = await store.completeMany(completes);
    });
    expect(completed).toEqual({ writes: 1, commands: ['evalsha'], scripts: 1 });
    expect(outcomes.every((o) => o === 'ok')).toBe(true);

    const again = await observe(() => store.claimMany(claims(100)));
    expect(again).toEqual({ writes: 1, commands: ['evalsha'], scripts: 1 });
  });

  it('claimMany over three scopes is one script call per scope, sent in one write', async () => {
    const batch = [...claims(10, 'a', 200), ...claims(10, 'b', 200), ...claims(10, 'c', 200)];
    const seen = await observe(() => store.claimMany(batch));
    expect(seen).toEqual({ writes: 1, commands: ['evalsha', 'evalsha', 'evalsha'], scripts: 3 });
  });
});
