/**
 * Replaying a topic for a consumer group without re-applying effects.
 *
 *   KAFKA_BROKERS=127.0.0.1:9092 REDIS_URL=redis://127.0.0.1:6379 npm run start -w @onceonly/example-replay-topic
 *
 * Consumes 500 unstamped messages (IDs from topic/partition/offset), stops the group, moves its
 * offsets back to the earliest with `replayTopic`, and consumes again: nothing runs twice. Then the
 * same replay with `reprocess: true` runs the marked offsets again on purpose, under a new scope so
 * the IDs inside the window do not stop it.
 */
import { Redis } from 'ioredis';
import { Kafka, Partitioners, logLevel } from 'kafkajs';
import { KafkaDedup, replayTopic, type KafkaDedupOptions } from '@onceonly/kafka';
import { RedisStore } from '@onceonly/redis';

const brokers = (process.env['KAFKA_BROKERS'] ?? '127.0.0.1:9092').split(',');
const redis = new Redis(process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: 1 });
const suffix = Date.now().toString(36);
const topic = `onceonly-events-${suffix}`;
const groupId = `onceonly-projector-${suffix}`;
const COUNT = 500;

const kafka = new Kafka({ clientId: 'onceonly-replay-example', brokers, logLevel: logLevel.WARN });
const admin = kafka.admin();
await admin.connect();
await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });
const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
await producer.connect();
await producer.send({ topic, messages: Array.from({ length: COUNT }, (_, n) => ({ value: `event ${n}` })) });
await producer.disconnect();

const store = new RedisStore({ client: redis, prefix: 'onceonly-example' });

/** Runs the group over the whole topic once; returns how many handler runs there were. */
async function consumeOnce(options: Partial<KafkaDedupOptions> = {}): Promise<number> {
  const dedup = new KafkaDedup({ groupId, store, idSource: 'offset', ...options });
  let runs = 0;
  let handled = 0;
  dedup.processor.on('outcome', (outcome) => {
    if (outcome.status === 'processed' || outcome.status === 'duplicate') handled++;
  });
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run(dedup.batchRunConfig(async () => void runs++));
  while (handled < COUNT) await new Promise((resolve) => setTimeout(resolve, 100));
  await consumer.disconnect(); // a group must have no members for its offsets to move
  await dedup.close();
  return runs;
}

console.log(`first run:          ${await consumeOnce()} handler runs`);
await replayTopic(admin, { groupId, topic, from: 'earliest' });
console.log(`replay (earliest):  ${await consumeOnce()} handler runs (IDs within the window; the mark beyond it)`);
await replayTopic(admin, { groupId, topic, from: { timestamp: Date.now() - 60_000 } });
console.log(`deliberate re-run:  ${await consumeOnce({ reprocess: true, scope: `${groupId}-rerun-1` })} handler runs (reprocess, new scope)`);

await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
await admin.disconnect();
redis.disconnect();
