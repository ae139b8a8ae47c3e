/**
 * `npm run bench`: throughput and memory of onceonly's stores, each row beside a baseline measured in
 * the same run (the machine is noisy; compare ratios, not absolute figures).
 *
 *   npm run bench                         # memory rows, and Redis rows on a local redis-server
 *   npm run bench -- --redis redis://127.0.0.1:6379 --quick
 *   npm run bench -- --only bullmq
 *   npm run bench -- --only otel         # the cost of @onceonly/otel, no provider vs an SDK
 *   npm run bench -- --only redis,peer   # peer: AWS Powertools idempotency on the same Redis
 *   npm run bench -- --only kafka --kafka 127.0.0.1:9092     # else a local broker from the Maven jars
 *   npm run bench -- --only postgres [--postgres postgres://…] # else a throwaway local PostgreSQL
 */
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { resolveKafka } from '../../../test/support/kafka/broker.js';
import { resolvePostgres } from '../../../test/support/postgres-server.js';
import { resolveRedis } from '../../../test/support/redis-server.js';
import { bullmqThroughput } from './bullmq.js';
import { kafkaThroughput } from './kafka.js';
import { kafkaGlue } from './kafka-glue.js';
import { fingerprintThroughput, memoryFootprint, memoryThroughput, processBatchThroughput } from './memory.js';
import { otelOverhead } from './otel.js';
import { peerPowertools } from './peer.js';
import { postgresBench } from './postgres.js';
import { redisThroughput } from './redis.js';
import { printTable, type Row } from './table.js';

const { values } = parseArgs({
  options: {
    redis: { type: 'string' },
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    kafka: { type: 'string' },
    postgres: { type: 'string' },
  },
  strict: true,
});
const GROUPS = ['memory', 'otel', 'redis', 'peer', 'bullmq', 'kafka', 'postgres'];
const groups = new Set((values.only ?? GROUPS.join(',')).split(','));
for (const group of groups) {
  if (!GROUPS.includes(group)) {
    console.error(`bench: unknown group "${group}" in --only (${GROUPS.join(', ')})`);
    process.exit(2);
  }
}
const quick = values.quick;
const progress = (step: string) => process.stderr.write(`  … ${step}\n`);

console.log(`onceonly benchmarks: node ${process.version}, ${cpus().length} cores${quick ? ', --quick' : ''}\n`);
const rows: Row[] = [];
const notes: string[] = [];

if (groups.has('memory')) {
  rows.push(...(await memoryThroughput(quick ? 200_000 : 1_000_000, quick ? 3 : 5, progress)));
  rows.push(...(await processBatchThroughput(quick ? 100_000 : 500_000, quick ? 3 : 5, progress)));
  for (const n of quick ? [1_000_000] : [1_000_000, 10_000_000]) rows.push(...(await memoryFootprint(n, progress)));
  rows.push(...(await memoryFootprint(1_000_000, progress, { fingerprints: true })));
  rows.push(...(await fingerprintThroughput(quick ? 50_000 : 200_000, quick ? 3 : 5, progress)));
}

if (groups.has('otel')) {
  const otel = await otelOverhead(quick ? 20_000 : 50_000, quick ? 5 : 15, progress);
  rows.push(...otel.rows);
  notes.push(...otel.notes);
}

let redisUrl = values.redis;
let stopRedis = async () => {};
if (groups.has('redis') || groups.has('peer') || groups.has('bullmq') || groups.has('kafka')) {
  let url = values.redis;
  let stop = async () => {};
  if (!url) {
    try {
      const redis = await resolveRedis();
      url = redis.url;
      stop = redis.stop;
      progress(`redis: ${redis.source} at ${url}`);
    } catch (error) {
      notes.push(`redis rows not measured: ${(error as Error).message}`);
    }
  }
  redisUrl = url;
  stopRedis = stop;
  if (url && groups.has('redis')) {
    const redis = await redisThroughput(url, quick ? 20_000 : 100_000, quick ? 3 : 5, quick ? 200_000 : 1_000_000, progress);
    rows.push(...redis.rows);
    notes.push(...redis.notes);
  }
  if (url && groups.has('peer')) {
    const peer = await peerPowertools(url, quick ? 200_000 : 1_000_000, quick ? 2_000 : 10_000, quick ? 1 : 3, progress);
    rows.push(...peer.rows);
    notes.push(...peer.notes);
  }
  if (url && groups.has('bullmq')) {
    const bullmq = await bullmqThroughput(url, quick ? 2_000 : 20_000, quick ? 1 : 3, progress);
    rows.push(...bullmq.rows);
    notes.push(...bullmq.notes);
  }
}

if (groups.has('kafka')) rows.push(...(await kafkaGlue(quick ? 50_000 : 200_000, quick ? 3 : 5, progress)));
if (groups.has('kafka') && redisUrl) {
  let brokers = values.kafka?.split(',');
  let stopKafka = async () => {};
  if (!brokers) {
    try {
      const kafka = await resolveKafka();
      brokers = kafka.brokers;
      stopKafka = kafka.stop;
      progress(`kafka: ${kafka.source} at ${brokers.join(',')}`);
    } catch (error) {
      notes.push(`kafka rows not measured: ${(error as Error).message}`);
    }
  }
  if (brokers) {
    try {
      const kafka = await kafkaThroughput(brokers, redisUrl, quick ? 20_000 : 100_000, quick ? 1 : 3, progress);
      rows.push(...kafka.rows);
      notes.push(...kafka.notes);
    } finally {
      await stopKafka();
    }
  }
}
await stopRedis();

if (groups.has('postgres')) {
  let url = values.postgres;
  let stop = async () => {};
  if (!url) {
    try {
      const server = await resolvePostgres();
      url = server.url;
      stop = server.stop;
      progress(`postgres: ${server.source}`);
    } catch (error) {
      notes.push(`postgres rows not measured: ${(error as Error).message}`);
    }
  }
  if (url) {
    try {
      const postgres = await postgresBench(
        url,
        { n: quick ? 20_000 : 100_000, messages: quick ? 2_000 : 10_000, retained: quick ? 200_000 : 1_000_000, rounds: quick ? 3 : 5 },
        progress,
      );
      rows.push(...postgres.rows);
      notes.push(...postgres.notes);
    } finally {
      await stop();
    }
  }
}

console.log();
printTable(rows);
for (const note of notes) console.log(`\n${note}`);
