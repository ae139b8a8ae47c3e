/**
 * A stamping producer and an effectively-once consumer group.
 *
 *   KAFKA_BROKERS=127.0.0.1:9092 REDIS_URL=redis://127.0.0.1:6379 npm run start -w @onceonly/example-kafka-consumer
 *
 * Sends 1 000 orders, then sends every one of them again with the same stamp (as a producer retry
 * would), and consumes the topic with a group whose handler "charges" each order. Prints how many
 * charges ran: 1 000, not 2 000.
 */
import { Redis } from 'ioredis';
import { Kafka, Partitioners, logLevel } from 'kafkajs';
import { KafkaDedup, stampMessages, withMessageIds } from '@onceonly/kafka';
import { RedisStore } from '@onceonly/redis';

const brokers = (process.env['KAFKA_BROKERS'] ?? '127.0.0.1:9092').split(',');
const redisUrl = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const suffix = Date.now().toString(36);
const topic = `onceonly-orders-${suffix}`;
const groupId = `onceonly-billing-${suffix}`;
const ORDERS = 1_000;

const kafka = new Kafka({ clientId: 'onceonly-example', brokers, logLevel: logLevel.WARN });
const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
const admin = kafka.admin();
await admin.connect();
await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true });

// Producer: the wrapper stamps an `onceonly-id` header on every message lacking one. Stamping first and
// sending twice shows what a retry of a send that had in fact succeeded looks like to the consumer.
const producer = withMessageIds(kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner }));
await producer.connect();
const orders = stampMessages(Array.from({ length: ORDERS }, (_, n) => ({ value: JSON.stringify({ orderId: n, cents: 100 + n }) })));
await producer.send({ topic, messages: orders });
await producer.send({ topic, messages: orders }); // the "retry": same IDs
await producer.disconnect();

// Consumer group: scope = group, IDs from the header, records and high-water marks in Redis.
const dedup = new KafkaDedup({ groupId, store: new RedisStore({ client: redis, prefix: 'onceonly-example' }) });
let charges = 0;
let handled = 0;
dedup.processor.on('outcome', (outcome) => {
  if (outcome.status === 'processed' || outcome.status === 'duplicate') handled++;
});
const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200 });
await consumer.connect();
await consumer.subscribe({ topics: [topic], fromBeginning: true });
await consumer.run(
  dedup.batchRunConfig(async (message, { id }) => {
    charges++; // your side effect; guard it downstream with `id` / `token` for the crash window
    if (charges <= 3) console.log(`charged order ${JSON.parse(message.value!.toString()).orderId} (message ${id})`);
  }),
);
while (handled < 2 * ORDERS) await new Promise((resolve) => setTimeout(resolve, 100));

console.log(`\n${2 * ORDERS} deliveries, ${charges} charges, ${dedup.processor.stats().duplicate} duplicates skipped`);
await consumer.disconnect();
await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
await admin.disconnect();
await dedup.close();
redis.disconnect();
process.exit(charges === ORDERS ? 0 : 1);
