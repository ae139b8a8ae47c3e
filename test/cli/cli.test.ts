// The built `onceonly` executable against a real Redis: the command tests every store shares
// (cli-commands.ts: every command, --json output, confirmation and refusal, progress on stderr,
// hostile IDs round-tripping, exit codes for not found, an unreachable or silent server and a missing
// optional dependency), then what is Redis's own: usage errors and a Redis Cluster.
import { ExitCode } from '@onceonly/cli';
import { encodeKeyPart, HASHED_MARKER, RedisStore } from '@onceonly/redis';
import { Cluster, type Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { hostile } from '../../packages/redis/test/hostile-ids.js';
import { findRedisServerBinary, startRedisCluster, type LocalRedisCluster } from '../support/redis-server.js';
import { connectSharedRedis, deleteUnder, expireLease, randomPrefix } from '../redis/redis-test-context.js';
import { describeCliCommands } from './cli-commands.js';
import { assertBuilt, json, pool, runCli, type ListDoc } from './run-cli.js';

const WINDOW = 3_600_000;
const LEASE = 60_000;

let client: Redis;
let prefix: string;
let store: RedisStore;
const url = inject('redisUrl');

beforeAll(async () => {
  assertBuilt();
  client = await connectSharedRedis();
});
afterAll(() => client?.disconnect());
beforeEach(() => {
  prefix = randomPrefix();
  store = new RedisStore({ client, prefix });
});
afterEach(async () => {
  await deleteUnder(client, prefix);
});

describeCliCommands({
  name: 'redis',
  url: () => url,
  urlEnv: 'ONCEONLY_REDIS_URL',
  packages: ['@onceonly/redis', 'ioredis'],
  store: () => store,
  scoping: () => ['--prefix', prefix],
  where: (scope, id) => ({ key: store.keyOf(scope, id), table: null }),
  expireLease: (scope, id) => expireLease(client, store.keyOf(scope, id)),
  // A key whose expiry is in the past is gone, as Redis expires it.
  expireRecord: async (scope, id) => {
    expect(await client.pexpireat(store.keyOf(scope, id), 1)).toBe(1);
  },
  entryOf: (id) => {
    const keyPart = encodeKeyPart(id);
    return keyPart.startsWith(HASHED_MARKER) ? { keyPart } : { id, keyPart };
  },
  ordered: false,
  cursor: /\d+(?::[^:\s]+)?/, // a SCAN cursor, and the key part to resume after
  foreignCursor: 'p1.AAAA',
  hostile: {
    ids: hostile,
    sample: ['\u0000', '\uD83D', '\uDE00', '\uD83Dx', '%41', '%2', '#a', HASHED_MARKER + 'A'.repeat(43), "!'()*", 'x'.repeat(256), 'é'.repeat(128), 'a'.repeat(10_000)],
    doomed: ['\u0000', '\uD83D', 'x'.repeat(256)],
  },
  refusedUrl: (port) => `redis://127.0.0.1:${port}`,
  silentUrl: (port) => `redis://:secret@127.0.0.1:${port}`,
  refused: /cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+.*ECONNREFUSED/,
  silent: /no answer within 500 ms/,
});

describe('onceonly --redis usage errors', () => {
  it('2 for usage errors, before connecting anywhere', async () => {
    const cases: [string[], RegExp][] = [
      [['frobnicate'], /unknown command 'frobnicate'/],
      [['--redis', url, 'list'], /missing required argument 'scope'/],
      [['--redis', url, 'list', 's', '--limit', 'x'], /--limit must be a whole number/],
      [['--redis', url, 'list', 's', '--state', 'done'], /Allowed choices/],
      [['--redis', url, 'purge', 's'], /purge needs <scope> <id>/],
      [['stats', 's'], /no store given: pass --redis <url>/],
      [['--redis', 'http://127.0.0.1:1', 'stats', 's'], /--redis must be a redis:\/\/ or rediss:\/\/ URL/],
      [['--redis', url, '--prefix', 'a{b', 'stats', 's'], /prefix/],
    ];
    const runs = await pool(cases, 4, ([args]) => runCli(args));
    runs.forEach((run, i) => {
      expect(run.code, cases[i]![0].join(' ')).toBe(ExitCode.USAGE);
      expect(run.stderr).toMatch(cases[i]![1]);
      expect(run.stdout).toBe('');
    });
    const help = await runCli(['--help']);
    expect(help.code).toBe(ExitCode.OK);
    expect(help.stdout).toMatch(/Usage: onceonly/);
  });
});

describe.skipIf(!findRedisServerBinary())('onceonly --cluster', () => {
  let cluster: LocalRedisCluster;
  let clusterClient: Cluster;

  beforeAll(async () => {
    cluster = await startRedisCluster(3);
    clusterClient = new Cluster(cluster.nodes, { redisOptions: { maxRetriesPerRequest: 1 }, lazyConnect: true });
    clusterClient.on('error', () => {});
    await clusterClient.connect();
  });
  afterAll(async () => {
    clusterClient?.disconnect();
    await cluster?.stop();
  });

  it('lists, counts and purges scopes that live on different masters, from any one node URL', async () => {
    const clusterPrefix = randomPrefix();
    const clusterStore = new RedisStore({ client: clusterClient, prefix: clusterPrefix });
    const scopes = Array.from({ length: 6 }, (_, i) => `scope-${i}`);
    for (const scope of scopes) {
      const ids = Array.from({ length: 12 }, (_, i) => `${scope}/${i}`);
      const claims = await clusterStore.claimMany(ids.map((id) => ({ scope, id, leaseMs: LEASE, windowMs: WINDOW })));
      await clusterStore.completeMany(claims.map((c, i) => ({ scope, id: ids[i]!, token: c.status === 'acquired' ? c.token : -1, windowMs: WINDOW })));
    }
    const sizes = await Promise.all(clusterClient.nodes('master').map((node) => node.dbsize()));
    expect(sizes.filter((n) => n > 0).length).toBeGreaterThan(1);

    const node = `redis://${cluster.nodes[0]!.host}:${cluster.nodes[0]!.port}`;
    const on = (args: string[]) => runCli(['--redis', node, '--cluster', '--prefix', clusterPrefix, '--json', ...args]);
    const runs = await pool(scopes, 3, (scope) => on(['stats', scope]));
    runs.forEach((run, i) => expect(json(run), run.stderr).toMatchObject({ scope: scopes[i], counts: { completed: 12, total: 12 } }));
    const listed = json<ListDoc>(await on(['list', 'scope-4', '--limit', '5', '--batch-size', '3']));
    expect(listed.entries).toHaveLength(5);
    expect(listed.cursor).not.toBeNull();
    expect(json(await on(['inspect', 'scope-2', 'scope-2/7']))).toMatchObject({ found: true, record: { state: 'completed' } });
    expect(json(await on(['purge', '--scope', 'scope-3', '--yes']))).toMatchObject({ records: 12 });
    expect((await clusterStore.countByState('scope-3')).total).toBe(0);
    expect((await clusterStore.countByState('scope-5')).total).toBe(12);
  });
});
