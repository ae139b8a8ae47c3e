import { createRequire } from 'node:module';
import { Redis } from 'ioredis';
import { Kafka, Partitioners, logLevel, type KafkaMessage, type Message } from 'kafkajs';
import { uuidv7, type ClaimResult, type DedupStore } from '@onceonly/core';
import { KafkaDedup, stampMessages, type BatchPayloadLike, type KafkaDedupOptions } from '@onceonly/kafka';
import { RedisStore } from '@onceonly/redis';
import { createTopic, randomName } from '../../../test/support/kafka/broker.js';
import { deleteByPrefix } from './store-helpers.js';
import { median, rate, type Row } from './table.js';

const PARTITIONS = 6;
const IN_FLIGHT = 50;
const LEASE = 30_000;
const WINDOW = 600_000;

/**
 * `js.consumer.max.batch.size` of Confluent's consumer: its eachBatch holds at most this many messages
 * (32 by default, which would also cap the handlers in flight below 50). kafkajs' batches are what a
 * fetch returned: a few thousand here.
 */
const CONFLUENT_MAX_BATCH = 1_000;

/** The 1 ms of I/O of the "real work" handler (a timer: what an awaited network call costs the event loop). */
const io = () => new Promise<void>((resolve) => setTimeout(resolve, 1));

/** An eachBatch handler either client accepts. */
type EachBatch = (payload: BatchPayloadLike) => Promise<void>;

/** What the bench uses of a KafkaJS-shaped consumer, from kafkajs or from Confluent's client. */
interface BenchConsumer {
  run(config: { eachBatch: EachBatch; eachBatchAutoResolve: boolean }): Promise<void>;
  disconnect(): Promise<void>;
}

/** A client to measure: its name in the rows, and a subscribed consumer of a new group reading from the beginning. */
interface BenchClient {
  readonly name: 'kafkajs' | 'confluent';
  consumer(groupId: string, topic: string): Promise<BenchConsumer>;
}

function kafkajsClient(brokers: string[]): BenchClient {
  const kafka = new Kafka({ clientId: 'onceonly-bench', brokers, logLevel: logLevel.NOTHING });
  return {
    name: 'kafkajs',
    async consumer(groupId, topic) {
      const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100, sessionTimeout: 10_000, heartbeatInterval: 1_000 });
      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      // kafkajs' handler types name its own payload; BatchPayloadLike is what both clients' payloads have.
      return { run: (config) => consumer.run(config as Parameters<typeof consumer.run>[0]), disconnect: () => consumer.disconnect() };
    },
  };
}

/** What the bench uses of `require('@confluentinc/kafka-javascript').KafkaJS` (an optional dependency: declared here). */
interface ConfluentKafkaJS {
  Kafka: new (config: { kafkaJS: Record<string, unknown> }) => {
    consumer(config: Record<string, unknown>): BenchConsumer & { connect(): Promise<void>; subscribe(subscription: { topics: string[] }): Promise<void> };
  };
  logLevel: { NOTHING: number };
}

/** Confluent's KafkaJS-compatible client, or why it cannot be loaded (it is a node-gyp build for one Node version). */
function confluentClient(brokers: string[]): BenchClient | string {
  let api: ConfluentKafkaJS;
  try {
    api = (createRequire(import.meta.url)('@confluentinc/kafka-javascript') as { KafkaJS: ConfluentKafkaJS }).KafkaJS;
  } catch (error) {
    return `@confluentinc/kafka-javascript does not load on node ${process.version}: ${String((error as Error).message).split('\n')[0]} (node scripts/ensure-services.mjs builds it)`;
  }
  const kafka = new api.Kafka({ kafkaJS: { clientId: 'onceonly-bench', brokers, logLevel: api.logLevel.NOTHING } });
  return {
    name: 'confluent',
    async consumer(groupId, topic) {
      const consumer = kafka.consumer({
        kafkaJS: { groupId, fromBeginning: true, maxWaitTimeInMs: 100, sessionTimeout: 10_000, heartbeatInterval: 1_000 },
        'js.consumer.max.batch.size': CONFLUENT_MAX_BATCH,
      });
      await consumer.connect();
      await consumer.subscribe({ topics: [topic] });
      return consumer;
    },
  };
}

/**
 * Consumes the whole topic with a new group; resolves with messages per second (from the first batch),
 * the batches seen, and the consumer's CPU time per message (event-loop utilisation × elapsed / messages).
 */
async function consumeAll(client: BenchClient, topic: string, total: number, make: (onMessages: (n: number) => void) => { eachBatch: EachBatch; eachBatchAutoResolve: boolean }): Promise<{ rate: number; batches: number; cpuUs: number }> {
  const consumer = await client.consumer(randomName('bench-group'), topic);
  let seen = 0;
  let batches = 0;
  let started = 0;
  let elu = performance.eventLoopUtilization();
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const { eachBatch, eachBatchAutoResolve } = make((n) => {
    seen += n;
    if (seen >= total) finish();
  });
  await consumer.run({
    eachBatchAutoResolve,
    eachBatch: async (payload) => {
      if (started === 0) {
        started = performance.now(); // from the first batch: group join is not measured
        elu = performance.eventLoopUtilization();
      }
      batches++;
      await eachBatch(payload);
    },
  });
  // Bounded: a consumer that stalls fails the bench instead of hanging it.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`bench: ${topic} not consumed within 300 s (${seen} of ${total})`)), 300_000);
  });
  try {
    await Promise.race([finished, deadline]);
  } finally {
    clearTimeout(timer);
  }
  const elapsed = performance.now() - started;
  const busy = performance.eventLoopUtilization(elu).utilization;
  await consumer.disconnect();
  return { rate: (total / elapsed) * 1000, batches, cpuUs: (busy * elapsed * 1000) / total };
}

/**
 * Raw kafkajs `eachBatch` keeping `limit` handlers in flight per batch, resolving offsets over the
 * contiguous finished prefix (what a careful hand-written parallel consumer does), heartbeating.
 */
function rawInFlight(limit: number, handler: (message: KafkaMessage) => Promise<void>, onMessages: (n: number) => void): EachBatch {
  return async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
    const messages = batch.messages;
    const finished = new Uint8Array(messages.length);
    let next = 0;
    let prefix = 0;
    let beat = Date.now();
    const worker = async () => {
      while (next < messages.length && isRunning() && !isStale()) {
        const i = next++;
        await handler(messages[i]!);
        finished[i] = 1;
        while (prefix < messages.length && finished[prefix] === 1) resolveOffset(messages[prefix++]!.offset);
        if (Date.now() - beat >= 1_000) {
          beat = Date.now();
          await heartbeat();
        }
      }
    };
    await Promise.all(Array.from({ length: limit }, worker));
    onMessages(messages.length);
  };
}

/** Store calls by kind that went to the server: each is one round trip (every call of a batch is for one scope). */
function countingStore(store: DedupStore) {
  const calls: Record<string, number> = {};
  const proxy = new Proxy(store, {
    get(target, property) {
      const value = Reflect.get(target, property, target) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const answer = (value as (...a: unknown[]) => unknown).apply(target, args);
        // Only asynchronous calls reach Redis (`isAvailable` is a local check).
        if (answer instanceof Promise && property !== 'close') calls[String(property)] = (calls[String(property)] ?? 0) + 1;
        return answer;
      };
    },
  });
  return { store: proxy, calls };
}

/** CPU seconds the Redis server has used (user + system), from INFO. */
async function redisCpuSeconds(client: Redis): Promise<number> {
  const info = await client.info('cpu');
  const field = (name: string) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? 0);
  return field('used_cpu_user') + field('used_cpu_sys');
}

/** The wrapped consumer: a new group, new records, `options` on top of the defaults. */
async function wrapped(kafka: BenchClient, client: Redis, topic: string, n: number, handler: (message: KafkaMessage) => unknown, options: Partial<KafkaDedupOptions>) {
  const prefix = `onceonly-bench-${uuidv7()}`;
  const counting = countingStore(new RedisStore({ client, prefix }));
  const dedup = new KafkaDedup({ groupId: randomName('bench-dedup'), store: counting.store, ...options });
  const redisCpu = await redisCpuSeconds(client);
  try {
    const result = await consumeAll(kafka, topic, n, (onMessages) => {
      const inner = dedup.eachBatch(handler);
      return {
        eachBatchAutoResolve: false,
        eachBatch: async (payload) => {
          await inner(payload);
          onMessages(payload.batch.messages.length);
        },
      };
    });
    return { ...result, calls: counting.calls, redisUs: (((await redisCpuSeconds(client)) - redisCpu) * 1e6) / n };
  } finally {
    await dedup.close();
    await deleteByPrefix(client, prefix);
  }
}

/**
 * The store's own ceiling, as the `redis` group measures it: claim 100 IDs in one round trip, complete
 * them in another, one batch after the other.
 */
async function storeCeiling(client: Redis, n: number): Promise<number> {
  const prefix = `onceonly-bench-${uuidv7()}`;
  const store = new RedisStore({ client, prefix });
  const acquired = (claim: ClaimResult | undefined) => {
    if (claim?.status !== 'acquired') throw new Error(`bench: unexpected claim answer ${claim?.status}`);
    return claim.token;
  };
  const ids = Array.from({ length: n }, () => uuidv7());
  try {
    return await rate(n, async () => {
      for (let i = 0; i < n; i += 100) {
        const batch = ids.slice(i, i + 100);
        const claims = await store.claimMany(batch.map((id) => ({ scope: 'bench', id, leaseMs: LEASE, windowMs: WINDOW })));
        await store.completeMany(batch.map((id, k) => ({ scope: 'bench', id, token: acquired(claims[k]), windowMs: WINDOW })));
      }
    });
  } finally {
    await deleteByPrefix(client, prefix);
  }
}

interface Tally {
  calls: Record<string, number>[];
  batches: number;
  cpuUs: number[];
  redisUs: number[];
}

/** Round trips per claim chunk, by kind: "1 claim + 3.2 complete + 0.1 extend". */
function perChunk(name: string, tally: Tally, n: number): string {
  const sum = (kinds: string[]) => tally.calls.reduce((total, calls) => total + kinds.reduce((s, kind) => s + (calls[kind] ?? 0), 0), 0);
  const claims = sum(['claimMany', 'claimManyMarked']);
  const completes = sum(['completeMany', 'completeManyMarked']);
  const extensions = sum(['extendMany']);
  const other = tally.calls.reduce((total, calls) => total + Object.values(calls).reduce((s, c) => s + c, 0), 0) - claims - completes - extensions;
  const per = (count: number) => (count / claims).toFixed(2);
  const messages = n * tally.calls.length;
  return (
    `${name}: ${claims} claim chunks over ${tally.batches} batches (${(messages / claims).toFixed(0)} messages per chunk); ` +
    `store round trips per chunk: 1 claim + ${per(completes)} complete + ${per(extensions)} extend + ${per(other)} other ` +
    `(${(messages / completes).toFixed(0)} completions per flush); CPU per message: consumer ${median(tally.cpuUs).toFixed(1)} µs, ` +
    `Redis ${median(tally.redisUs).toFixed(1)} µs`
  );
}

/** One client's measurements over the rounds. */
interface ClientRates {
  rawIo: number[];
  wrappedIo: number[];
  rawNoop: number[];
  wrappedNoop: number[];
  rawCpuUs: number[];
  io: Tally;
  noop: Tally;
}

const newTally = (): Tally => ({ calls: [], batches: 0, cpuUs: [], redisUs: [] });

/**
 * 100 000 messages of ~200 bytes on a 6-partition topic, consumed in the same run, alternately, by
 * kafkajs and by Confluent's KafkaJS-compatible client (batches of up to {@link CONFLUENT_MAX_BATCH};
 * kafkajs' follow the default fetch sizes: a few thousand), each:
 * - with a handler with 1 ms of I/O: `concurrency: 50` against the same client's raw `eachBatch`
 *   keeping 50 handlers in flight (target ≥ 0.9);
 * - with a no-op handler (default options): against the store's own ceiling, RedisStore claim+complete
 *   in batches of 100 (target ≥ 0.8), and against the same client's raw `eachBatch` (no target: the
 *   whole protection);
 * plus the store round trips per claim chunk. Without Confluent's client (it must be built for the
 * running Node), its rows are left out with a note.
 */
export async function kafkaThroughput(brokers: string[], redisUrl: string, n: number, rounds: number, progress: (s: string) => void): Promise<{ rows: Row[]; notes: string[] }> {
  const kafka = new Kafka({ clientId: 'onceonly-bench', brokers, logLevel: logLevel.NOTHING });
  const confluent = confluentClient(brokers);
  const clients = [kafkajsClient(brokers), ...(typeof confluent === 'string' ? [] : [confluent])];
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
  const ceiling: number[] = [];
  const measured = new Map<BenchClient, ClientRates>(
    clients.map((c) => [c, { rawIo: [], wrappedIo: [], rawNoop: [], wrappedNoop: [], rawCpuUs: [], io: newTally(), noop: newTally() }]),
  );
  try {
    for (let round = 0; round < rounds; round++) {
      let effects = 0;
      const effect = (message: KafkaMessage) => {
        effects += message.value!.length > 0 ? 1 : 0;
      };
      const ioEffect = async (message: KafkaMessage) => {
        await io();
        effect(message);
      };
      progress(`kafka: RedisStore claim+complete in batches of 100 (the store's ceiling), round ${round + 1}`);
      ceiling.push(await storeCeiling(client, n));

      for (const [bench, m] of measured) {
        progress(`kafka: ${bench.name} raw eachBatch, ${IN_FLIGHT} handlers with 1 ms of I/O in flight, round ${round + 1}`);
        const rawIo = await consumeAll(bench, topic, n, (onMessages) => ({ eachBatchAutoResolve: false, eachBatch: rawInFlight(IN_FLIGHT, ioEffect, onMessages) }));
        m.rawIo.push(rawIo.rate);
        m.rawCpuUs.push(rawIo.cpuUs);
        progress(`kafka: ${bench.name} wrapped eachBatch, concurrency ${IN_FLIGHT}, 1 ms of I/O, round ${round + 1}`);
        const wrappedIo = await wrapped(bench, client, topic, n, ioEffect, { concurrency: IN_FLIGHT });
        m.wrappedIo.push(wrappedIo.rate);
        tally(m.io, wrappedIo);

        progress(`kafka: ${bench.name} raw eachBatch, no-op handler, round ${round + 1}`);
        m.rawNoop.push(
          (
            await consumeAll(bench, topic, n, (onMessages) => ({
              eachBatchAutoResolve: true,
              eachBatch: async ({ batch }) => {
                for (const message of batch.messages) effect(message);
                onMessages(batch.messages.length);
              },
            }))
          ).rate,
        );
        progress(`kafka: ${bench.name} wrapped eachBatch, no-op handler, round ${round + 1}`);
        const wrappedNoop = await wrapped(bench, client, topic, n, effect, {});
        m.wrappedNoop.push(wrappedNoop.rate);
        tally(m.noop, wrappedNoop);
      }

      // Every consumer applied the "effect" of every message once (new group and new records each time).
      if (effects !== 4 * clients.length * n) throw new Error(`bench: expected ${4 * clients.length * n} effects in round ${round + 1}, got ${effects}`);
    }
  } finally {
    client.disconnect();
  }
  const size = `${n / 1000}k msgs, ${PARTITIONS} partitions`;
  const rows: Row[] = [];
  const notes: string[] = [];
  for (const [bench, m] of measured) {
    const label = bench.name === 'kafkajs' ? '' : 'confluent ';
    const raw = `raw ${bench.name}`;
    rows.push(
      {
        group: 'kafka',
        name: `${label}eachBatch, 1 ms I/O, concurrency ${IN_FLIGHT}, ${size}`,
        value: median(m.wrappedIo),
        baseline: median(m.rawIo),
        baselineName: `${raw} eachBatch, ${IN_FLIGHT} handlers in flight`,
        unit: 'ops/s',
        target: { text: '≥ 0.90 of baseline', met: (r) => r.value / r.baseline >= 0.9 },
      },
      {
        group: 'kafka',
        name: `${label}eachBatch, no-op handler, ${size}`,
        value: median(m.wrappedNoop),
        baseline: median(ceiling),
        baselineName: 'RedisStore claim+complete, batches of 100',
        unit: 'ops/s',
        target: { text: '≥ 0.80 of baseline', met: (r) => r.value / r.baseline >= 0.8 },
      },
      {
        group: 'kafka',
        name: `${label}eachBatch, no-op handler, ${size}`,
        value: median(m.wrappedNoop),
        baseline: median(m.rawNoop),
        baselineName: `${raw} eachBatch, no-op`,
        unit: 'ops/s',
      },
    );
    const who = bench.name === 'kafkajs' ? 'kafka' : `kafka, confluent (batches ≤ ${CONFLUENT_MAX_BATCH})`;
    notes.push(
      perChunk(`${who}, 1 ms I/O, concurrency ${IN_FLIGHT}`, m.io, n),
      perChunk(`${who}, no-op`, m.noop, n),
      `${who}, raw eachBatch with ${IN_FLIGHT} handlers of 1 ms I/O in flight: CPU per message: consumer ${median(m.rawCpuUs).toFixed(1)} µs`,
    );
  }
  if (typeof confluent === 'string') notes.push(`kafka: confluent rows not measured: ${confluent}`);
  return { rows, notes };
}

/** Adds one wrapped run to a tally. */
function tally(into: Tally, run: { calls: Record<string, number>; batches: number; cpuUs: number; redisUs: number }): void {
  into.calls.push(run.calls);
  into.batches += run.batches;
  into.cpuUs.push(run.cpuUs);
  into.redisUs.push(run.redisUs);
}
