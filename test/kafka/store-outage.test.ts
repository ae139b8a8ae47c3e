// The store goes away for longer than kafkajs' own retries last: the consumer waits in place (heartbeating,
// with backoff) instead of throwing, so kafkajs never crashes it, it never leaves and rejoins the group,
// and once the store is back (with its records: AOF) every message is processed, none lost.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { uuidv7 } from '@onceonly/core';
import { KafkaDedup, stampMessages } from '@onceonly/kafka';
import { RedisStore } from '@onceonly/redis';
import { startRedisServer, type LocalRedis } from '../support/redis-server.js';
import { committed, connectProducer, groupName, kafkaClient, newTopic, sendAll, waitFor } from './kafka-test-context.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('kafka: the store unreachable for a while', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });

  it('waits in place while the store is down (longer than kafkajs retries last), without a crash or a rejoin, and loses nothing', { timeout: 120_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'onceonly-outage-redis-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const args = ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir];
    let server: LocalRedis = await startRedisServer({ args });
    cleanups.push(() => server.stop());
    // Fail fast while it is down (the README's advice for the store's client): no offline queue.
    const client = new Redis(server.url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true });
    client.on('error', () => undefined);
    await client.connect();
    cleanups.push(async () => client.disconnect());
    const store = new RedisStore({ client, prefix: `onceonly-outage-${uuidv7()}` });

    const kafka = kafkaClient();
    const topic = await newTopic('outage', 2);
    const groupId = groupName('outage');
    const messages = stampMessages(Array.from({ length: 600 }, (_, i) => ({ key: `k${i % 20}`, value: `m${i}` })));
    const producer = await connectProducer(kafka);
    await sendAll(producer, topic, messages).finally(() => producer.disconnect());

    const dedup = new KafkaDedup({ groupId, store, processor: { leaseMs: 2_000 } });
    cleanups.push(() => dedup.close());
    const effects = new Map<string, number>();
    const takeovers = new Set<string>();
    let storeErrors = 0;
    dedup.processor.on('store-error', () => storeErrors++);
    // kafkajs gives up after 2 retries, 100 ms doubling: the outage below lasts far longer.
    const consumer = kafka.consumer({ groupId, sessionTimeout: 6_000, heartbeatInterval: 500, maxWaitTimeInMs: 100, retry: { initialRetryTime: 100, retries: 2 } });
    const crashes: unknown[] = [];
    let joins = 0;
    consumer.on(consumer.events.CRASH, ({ payload }) => crashes.push(payload.error));
    consumer.on(consumer.events.GROUP_JOIN, () => joins++);
    const admin = kafka.admin();
    await Promise.all([consumer.connect(), admin.connect()]);
    cleanups.push(() => Promise.all([consumer.disconnect(), admin.disconnect()]));
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run(
      dedup.batchRunConfig(async (_m, { id, takeover }) => {
        await sleep(5);
        if (takeover) takeovers.add(id);
        effects.set(id, (effects.get(id) ?? 0) + 1);
      }),
    );

    await waitFor('some messages processed', () => effects.size >= 150);
    await server.stop(); // SHUTDOWN: the AOF is fsynced on every write already
    await sleep(6_000);
    server = await startRedisServer({ port: server.port, args });

    const highs = await admin.fetchTopicOffsets(topic);
    await waitFor('every offset committed', async () => {
      const offsets = await committed(admin, groupId, topic);
      return highs.every(({ partition, high }) => offsets.get(partition) === high);
    }, 60_000);

    const ids = messages.map((m) => String(m.headers!['onceonly-id']));
    expect(storeErrors).toBeGreaterThan(0); // the outage was seen
    expect(crashes).toEqual([]);
    expect(joins).toBe(1);
    expect(ids.filter((id) => !effects.has(id))).toEqual([]);
    // A completion refused by the outage leaves its claim to expire: the next run is a takeover.
    expect(ids.filter((id) => (effects.get(id) ?? 0) > 1 && !takeovers.has(id))).toEqual([]);
    for (const id of ids) expect((await store.get(groupId, id))?.state).toBe('completed');
  });
});
