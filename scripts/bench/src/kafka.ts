import { Redis } from 'ioredis';
import { Kafka, Partitioners, logLevel, type EachBatchHandler, type Message } from 'kafkajs';
import { uuidv7 } from '@onceonly/core';
import { KafkaDedup, stampMessages } from '@onceonly/kafka';
import { RedisStore } from '@onceonly/redis';
import { createTopic, randomName } from '../../../test/support/kafka/broker.js';
import { countingStore } from './store-helpers.js';
import type { Row } from './table.js';

const PARTITIONS = 6;

/** Consumes the whole topic with a new group; resolves with messages per second and the batches seen. */
async function consumeAll(kafka: Kafka, topic: string, total: number, make: (onMessages: (n: number) => void) => { eachBatch: EachBatchHandler; eachBatchAutoResolve: boolean }): Promise<{ rate: number; batches: number }> {
  const groupId = randomName('bench-group');
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100, sessionTimeout: 10_000, heartbeatInterval: 1_000 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  let seen = 0;
  let batches = 0;
  let started = 0;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const { eachBatch, eachBatchAutoResolve } = make((n) => {
    seen += n;
    if (seen >= total) finish();
  });
  await consumer.run({
    eachBatchAutoResolve,
    eachBatch: async (payload) => {
      if (started === 0) started = performance.now(); // from the first batch: group join is not measured
      batches++;
      await eachBatch(payload);
    },
  });
  await finished;
  const elapsed = performance.now() - started;
  await consumer.disconnect();
  return { rate: (total / elapsed) * 1000, batches };
}

/**
 * 100 000 messages of ~200 bytes on a 6-partition topic, consumed by raw kafkajs `eachBatch` and by the
 * wrapped handler (RedisStore), same broker and run, alternately; plus the store round trips per batch.
 */
export async function kafkaThroughput(brokers: string[], redisUrl: string, n: number, rounds: number, progress: (s: string) => void): Promise<{ rows: Row[]; notes: string[] }> {
  const kafka = new Kafka({ clientId: 'onceonly-bench', brokers, logLevel: logLevel.NOTHING });
  const topic = randomName('bench');
  await createTopic(brokers, topic, PARTITIONS);
  progress(`kafka: producing ${n} messages of ~200 bytes`);
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const body = 'x'.repeat(150);
  for (let i = 0; i < n; i += 5_000) {
    const messages: Message[] = Array.from({ length: Math.min(5_000, n - i) }, (_, k) => ({ value: `{"n":${i + k},"b":"${body}"}` }));
    await producer.send({ topic, messages: stampMessages(messages) });
  }
  await producer.disconnect();

  const client = new Redis(redisUrl, { maxRetriesPerRequest: 1, lazyConnect: true });
  await client.connect();
  const raw: number[] = [];
  const wrapped: number[] = [];
  let calls = 0;
  let batches = 0;
  try {
    for (let round = 0; round < rounds; round++) {
      progress(`kafka: raw eachBatch, round ${round + 1}`);
      let effects = 0;
      raw.push(
        (
          await consumeAll(kafka, topic, n, (onMessages) => ({
            eachBatchAutoResolve: true,
            eachBatch: async ({ batch, resolveOffset }) => {
              for (const message of batch.messages) {
                effects += message.value!.length > 0 ? 1 : 0;
                resolveOffset(message.offset);
              }
              onMessages(batch.messages.length);
            },
          }))
        ).rate,
      );
      progress(`kafka: wrapped eachBatch (RedisStore), round ${round + 1}`);
      const counting = countingStore(new RedisStore({ client, prefix: `onceonly-bench-${uuidv7()}` }));
      const groupId = randomName('bench-dedup');
      // One claim chunk per kafkajs batch (batches here are a few thousand messages).
      const dedup = new KafkaDedup({ groupId, store: counting.store, maxClaimBatch: 10_000 });
      const result = await consumeAll(kafka, topic, n, (onMessages) => {
        const inner = dedup.eachBatch(async (message) => {
          effects += message.value!.length > 0 ? 1 : 0;
        });
        return {
          eachBatchAutoResolve: false,
          eachBatch: async (payload) => {
            await inner(payload);
            onMessages(payload.batch.messages.length);
          },
        };
      });
      wrapped.push(result.rate);
      // Both consumers applied the "effect" of every message once (new group and new records each round).
      if (effects !== 2 * n) throw new Error(`bench: expected ${2 * n} effects in round ${round + 1}, got ${effects}`);
      calls += counting.calls();
      batches += result.batches;
      await dedup.close();
    }
  } finally {
    client.disconnect();
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1]!;
  const perBatch = calls / batches;
  return {
    rows: [
      {
        group: 'kafka',
        name: `eachBatch, ${n / 1000}k msgs, ${PARTITIONS} partitions, RedisStore`,
        value: median(wrapped),
        baseline: median(raw),
        baselineName: 'raw kafkajs eachBatch',
        unit: 'ops/s',
        target: { text: '≥ 0.90 of baseline', met: (r) => r.value / r.baseline >= 0.9 },
      },
    ],
    notes: [`kafka: ${calls} store round trips over ${batches} batches = ${perBatch.toFixed(2)} per batch (target: exactly 2)`],
  };
}
