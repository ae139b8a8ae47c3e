/**
 * `npm run bench`: throughput and memory of onceonly's stores, each row beside a baseline measured in
 * the same run (the machine is noisy; compare ratios, not absolute figures).
 *
 *   npm run bench                         # memory rows, and Redis rows on a local redis-server
 *   npm run bench -- --redis redis://127.0.0.1:6379 --quick
 *   npm run bench -- --only bullmq
 */
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { resolveRedis } from '../../../test/support/redis-server.js';
import { memoryFootprint, memoryThroughput } from './memory.js';
import { bullmqThroughput } from './bullmq.js';
import { redisThroughput } from './redis.js';
import { printTable, type Row } from './table.js';

const { values } = parseArgs({
  options: {
    redis: { type: 'string' },
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
  },
  strict: true,
});
const GROUPS = ['memory', 'redis', 'bullmq'];
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
  rows.push(...(await memoryFootprint(1_000_000, progress)));
}

if (groups.has('redis') || groups.has('bullmq')) {
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
  if (url) {
    try {
      if (groups.has('redis')) rows.push(...(await redisThroughput(url, quick ? 20_000 : 100_000, quick ? 3 : 5, progress)));
      if (groups.has('bullmq')) {
        const bullmq = await bullmqThroughput(url, quick ? 2_000 : 20_000, quick ? 1 : 3, progress);
        rows.push(...bullmq.rows);
        notes.push(...bullmq.notes);
      }
    } finally {
      await stop();
    }
  }
}

console.log();
printTable(rows);
for (const note of notes) console.log(`\n${note}`);
