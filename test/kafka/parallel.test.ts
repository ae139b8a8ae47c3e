// Parallel handlers within a partition (`concurrency: 50, ordering: 'key'`) on a real broker: per-key
// order kept (a ledger of sequence numbers per key), no committed offset ever past a message whose
// completion is not acknowledged, and every effect exactly once across a rebalance (a second consumer
// joins mid-run and takes partitions over). On both clients (clients.ts).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CompleteRequest, DedupStore } from '@onceonly/core';
import { KafkaDedup, stampMessages, type KafkaHandler } from '@onceonly/kafka';
import type { Message } from 'kafkajs';
import { clients, type TestConsumer } from './clients.js';
import { committed, groupName, kafkaClient, newTopic, redisFixture, waitFor } from './kafka-test-context.js';

const KEYS = 200;
const TOTAL = 6_000;
const PARTITIONS = 3;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The store, telling `acknowledged` about every completion it acknowledged. */
function observed(store: DedupStore, acknowledged: (requests: readonly CompleteRequest[]) => void): DedupStore {
  return new Proxy(store, {
    get(target, property) {
      const value = Reflect.get(target, property, target) as unknown;
      if (typeof value !== 'function') return value;
      if (property === 'completeMany' || property === 'completeManyMarked') {
        return async (...args: unknown[]) => {
          const answer = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          acknowledged((property === 'completeMany' ? args[0] : args[1]) as readonly CompleteRequest[]);
          return answer;
        };
      }
      return (value as (...a: unknown[]) => unknown).bind(target);
    },
  });
}

describe.each(clients)('kafka ($name): parallel handlers within a partition', (client) => {
  let redis: Awaited<ReturnType<typeof redisFixture>>;
  beforeEach(async () => {
    redis = await redisFixture();
  });
  afterEach(async () => {
    await redis?.close();
  });

  it('concurrency 50, ordering "key": per-key order kept, no commit past an unacknowledged message, exactly once across a rebalance', { timeout: 120_000 }, async () => {
    const kafka = kafkaClient();
    const topic = await newTopic('parallel', PARTITIONS);
    const groupId = groupName('parallel');
    const seqOf = new Map<string, number>();
    const messages = stampMessages(
      Array.from({ length: TOTAL }, (_, i): Message => {
        const key = `k${(i * 7) % KEYS}`;
        const seq = seqOf.get(key) ?? 0;
        seqOf.set(key, seq + 1);
        return { key, value: JSON.stringify({ key, seq, slow: i % 40 === 0 }) };
      }),
    );

    // Unfinished messages by partition (offset by ID): from delivery to a batch until their completion
    // is acknowledged by the store, or they are answered as duplicates (re-deliveries after the rebalance).
    const unfinished = new Map<number, Map<string, number>>();
    for (let p = 0; p < PARTITIONS; p++) unfinished.set(p, new Map());
    const partitionOf = new Map<string, number>();
    const finished = (id: string) => unfinished.get(partitionOf.get(id)!)?.delete(id);
    const store = observed(redis.store, (requests) => requests.forEach(({ id }) => finished(id)));

    const effects = new Map<string, number>();
    const lastSeq = new Map<string, number>();
    const runningKeys = new Set<string>();
    const orderViolations: string[] = [];
    const byConsumer = [0, 0];
    const inFlight = Array.from({ length: PARTITIONS }, () => 0);
    let mostInFlight = 0; // in one partition
    const handler = (who: 0 | 1): KafkaHandler => async (message, { id, partition }) => {
      const { key, seq, slow } = JSON.parse(String(message.value)) as { key: string; seq: number; slow: boolean };
      if (runningKeys.has(key)) orderViolations.push(`${key}: seq ${seq} started while an earlier one ran`);
      if ((lastSeq.get(key) ?? -1) !== seq - 1) orderViolations.push(`${key}: seq ${seq} after ${lastSeq.get(key) ?? 'none'}`);
      runningKeys.add(key);
      mostInFlight = Math.max(mostInFlight, ++inFlight[partition]!);
      // 2–10 ms of I/O; every 40th message takes 150 ms, holding back the done prefix behind it.
      await sleep(slow ? 150 : 2 + Math.floor(Math.random() * 9));
      inFlight[partition]!--;
      runningKeys.delete(key);
      lastSeq.set(key, seq);
      effects.set(id, (effects.get(id) ?? 0) + 1);
      byConsumer[who]!++;
    };

    const admin = kafka.admin();
    await admin.connect();
    const consumers: TestConsumer[] = [];
    const dedups: KafkaDedup[] = [];
    const start = async (who: 0 | 1) => {
      const dedup = new KafkaDedup({ groupId, store, concurrency: 50, ordering: 'key', processor: { leaseMs: 5_000 } });
      dedup.processor.on('outcome', (outcome) => outcome.status === 'duplicate' && finished(outcome.id));
      // Commits every 100 ms, so offsets are committed while batches run, not only between them.
      const consumer = client.consumer({ groupId, autoCommitInterval: 100 });
      dedups.push(dedup);
      consumers.push(consumer);
      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      const config = dedup.batchRunConfig(handler(who), { partitionsConsumedConcurrently: PARTITIONS });
      await consumer.run({
        ...config,
        eachBatch: async (payload) => {
          const { partition, messages: delivered } = payload.batch;
          for (const message of delivered) {
            const id = String(message.headers!['onceonly-id']);
            partitionOf.set(id, partition);
            unfinished.get(partition)!.set(id, Number(message.offset));
          }
          await config.eachBatch(payload);
        },
      });
    };

    // Checks, while it runs, that no partition's committed offset passed a message still unfinished.
    // A message unfinished after the fetch returned was unfinished when the commit was made.
    const commitViolations: string[] = [];
    let checks = 0;
    let checking = true;
    const checker = (async () => {
      while (checking) {
        const offsets = await committed(admin, groupId, topic).catch(() => new Map<number, string>());
        for (const [partition, offset] of offsets) {
          for (const [id, at] of unfinished.get(partition) ?? []) {
            if (Number(offset) > at) commitViolations.push(`partition ${partition} committed ${offset} while ${id} at ${at} was unfinished`);
          }
        }
        checks++;
        await sleep(50);
      }
    })();

    try {
      await start(0);
      const producer = await client.producer();
      try {
        // ~8 s of traffic, so the second consumer joins while the first is busy.
        for (let i = 0; i < TOTAL; i += 150) {
          await producer.send({ topic, messages: messages.slice(i, i + 150) });
          if (i === 2_400) void start(1);
          await sleep(200);
        }
      } finally {
        await producer.disconnect();
      }
      const highs = await admin.fetchTopicOffsets(topic);
      await waitFor('every offset committed', async () => {
        const offsets = await committed(admin, groupId, topic);
        return highs.every(({ partition, high }) => offsets.get(partition) === high);
      }, 90_000);
    } finally {
      checking = false;
      await checker;
      await Promise.all(consumers.map((c) => c.disconnect()));
      await Promise.all(dedups.map((d) => d.close()));
      await admin.disconnect();
    }

    const ids = messages.map((m) => String(m.headers!['onceonly-id']));
    expect(ids.filter((id) => effects.get(id) !== 1)).toEqual([]);
    expect(orderViolations).toEqual([]);
    for (const [key, count] of seqOf) expect(lastSeq.get(key)).toBe(count - 1);
    expect(commitViolations).toEqual([]);
    expect(checks).toBeGreaterThan(20);
    expect(byConsumer[1]).toBeGreaterThan(0); // the second consumer took partitions over
    expect(mostInFlight).toBeGreaterThan(10); // handlers of a partition overlapped
    // Confluent's eachBatch holds at most `js.consumer.max.batch.size` messages (32 by default): no more run at once.
    if (client.name === 'confluent') expect(mostInFlight).toBeLessThanOrEqual(32);
    console.log(`parallel: ${byConsumer[0]} effects by the first consumer, ${byConsumer[1]} by the second; at most ${mostInFlight} handlers at once in a partition; ${checks} commit checks`);
  });
});
