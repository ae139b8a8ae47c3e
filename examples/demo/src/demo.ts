/**
 * onceonly demo: the same at-least-once workload processed twice, once with a plain handler and once
 * wrapped in a DedupProcessor, on the embedded memory store (or on Redis with `--redis URL`).
 *
 * The simulated broker redelivers anything not acked. The producer retries some sends (a duplicate
 * copy with the same ID), and workers crash at three points: before the side effect, between the side
 * effect and its completion being recorded, and after completion but before the ack. A crashed worker
 * is replaced by a fresh one; its lease runs out and another worker takes the message over.
 *
 *   npm run demo                              # memory store, 10 000 messages
 *   npm run demo -- --redis redis://127.0.0.1:6379 --messages 20000 --seed 7
 */
import { parseArgs } from 'node:util';
import { DedupProcessor, MemoryStore, uuidv7, type DedupStore } from '@onceonly/core';
import { SimulatedBroker, type Delivery, type Message } from './broker.js';
import { Ledger } from './ledger.js';
import { seededRandom } from './random.js';

type Crash = 'none' | 'before-effect' | 'after-effect' | 'before-ack';

interface Scenario {
  messages: number;
  workers: number;
  seed: number;
  /** Share of messages the producer sends twice (a retried send that had in fact succeeded). */
  producerRetryRate: number;
  /** Share of deliveries whose worker crashes, at each of the three points. */
  crashRate: number;
}

interface Row {
  label: string;
  messages: number;
  deliveries: number;
  duplicatesDelivered: number;
  handlerRuns: number;
  duplicateEffects: number;
  lost: number;
  crashes: number;
  ms: number;
}

const VISIBILITY_TIMEOUT_MS = 50;
const LEASE_MS = 200;

function usage(message?: string): never {
  if (message) console.error(`demo: ${message}\n`);
  console.error('usage: npm run demo -- [--messages N] [--workers N] [--seed N] [--redis URL]');
  process.exit(2);
}

function parseScenario(): { scenario: Scenario; redisUrl: string | undefined } {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        messages: { type: 'string', default: '10000' },
        workers: { type: 'string', default: '8' },
        seed: { type: 'string', default: '42' },
        redis: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (error) {
    usage((error as Error).message);
  }
  if (values.help) usage();
  const int = (name: string, text: string, min: number) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) usage(`--${name} must be an integer ≥ ${min}, got "${text}"`);
    return n;
  };
  return {
    scenario: {
      messages: int('messages', values.messages, 1),
      workers: int('workers', values.workers, 1),
      seed: int('seed', values.seed, 0),
      producerRetryRate: 0.1,
      crashRate: 0.01,
    },
    redisUrl: values.redis,
  };
}

function publishAll(broker: SimulatedBroker, scenario: Scenario, random: () => number): Message[] {
  const messages: Message[] = [];
  for (let i = 0; i < scenario.messages; i++) {
    const message: Message = { id: uuidv7(), body: { account: i % 97, amount: 1 + (i % 50) } };
    messages.push(message);
    broker.publish(message);
    if (random() < scenario.producerRetryRate) broker.publish(message);
  }
  return messages;
}

function pickCrash(random: () => number, rate: number): Crash {
  const r = random();
  if (r < rate) return 'before-effect';
  if (r < 2 * rate) return 'after-effect';
  if (r < 3 * rate) return 'before-ack';
  return 'none';
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));
const never = () => new Promise<never>(() => {});

/** One run of the workload: a fresh broker and ledger, the published messages and the counters. */
class Run {
  readonly random: () => number;
  readonly broker = new SimulatedBroker(VISIBILITY_TIMEOUT_MS);
  readonly ledger = new Ledger();
  readonly messages: Message[];
  handlerRuns = 0;
  crashes = 0;
  private readonly started = performance.now();

  constructor(readonly scenario: Scenario) {
    this.random = seededRandom(scenario.seed);
    this.messages = publishAll(this.broker, scenario, this.random);
  }

  async workers(worker: () => Promise<void>): Promise<void> {
    await Promise.all(Array.from({ length: this.scenario.workers }, worker));
  }

  row(label: string): Row {
    const { duplicateEffects, lost } = this.ledger.audit(this.messages.map((m) => m.id));
    return {
      label,
      messages: this.scenario.messages,
      deliveries: this.broker.deliveries,
      duplicatesDelivered: this.broker.deliveries - this.scenario.messages,
      handlerRuns: this.handlerRuns,
      duplicateEffects,
      lost,
      crashes: this.crashes,
      ms: Math.round(performance.now() - this.started),
    };
  }
}

/** Plain at-least-once consumers: every delivery runs the handler. */
async function runWithout(scenario: Scenario): Promise<Row> {
  const run = new Run(scenario);
  const { broker, ledger } = run;
  await run.workers(async () => {
    for (let delivery = await broker.next(); delivery; delivery = await broker.next()) {
      const crash = pickCrash(run.random, scenario.crashRate);
      run.handlerRuns++;
      await tick();
      if (crash !== 'before-effect') ledger.apply(delivery.message.id);
      if (crash === 'none') broker.ack(delivery);
      else {
        run.crashes++;
        broker.lost(delivery);
      }
    }
  });
  return run.row('without onceonly');
}

/** The same consumers with the handler wrapped in a DedupProcessor. */
async function runWith(scenario: Scenario, store: DedupStore, label: string): Promise<Row> {
  const run = new Run(scenario);
  const { broker, ledger } = run;
  const scope = `demo-${uuidv7()}`;

  // One processor per worker process; a crash replaces it, and its leases stop being extended.
  const newProcessor = () =>
    new DedupProcessor({
      scope,
      store,
      leaseMs: LEASE_MS,
      windowMs: 10 * 60_000,
      // A takeover means a worker died mid-handler: ask the downstream system whether the effect landed.
      onTakeover: 'reconcile',
      reconcile: ({ id }) => (ledger.has(id) ? 'done' : 'run'),
    });

  await run.workers(async () => {
    let processor = newProcessor();
    const crashWorker = async (delivery: Delivery) => {
      run.crashes++;
      await processor.close();
      broker.lost(delivery);
      processor = newProcessor();
    };
    for (let delivery = await broker.next(); delivery; delivery = await broker.next()) {
      const crash = pickCrash(run.random, scenario.crashRate);
      let died!: () => void;
      const death = new Promise<'crashed'>((resolve) => (died = () => resolve('crashed')));
      const handled = processor.process({ id: delivery.message.id, payload: delivery.message.body }, async (ctx) => {
        run.handlerRuns++;
        await tick();
        if (crash === 'before-effect') return died(), never();
        ledger.apply(ctx.id);
        if (crash === 'after-effect') return died(), never();
        return 'applied';
      });
      const outcome = await Promise.race([handled, death]);
      if (outcome === 'crashed') {
        await crashWorker(delivery);
        continue;
      }
      switch (outcome.status) {
        case 'processed':
        case 'duplicate':
          if (crash === 'before-ack') await crashWorker(delivery);
          else broker.ack(delivery);
          break;
        case 'in-progress':
          broker.nack(delivery, outcome.retryAfterMs);
          break;
        default:
          broker.nack(delivery, 10);
      }
    }
    await processor.close();
  });
  return run.row(label);
}

function printTable(rows: Row[]): void {
  const columns: [string, (r: Row) => string][] = [
    ['', (r) => r.label],
    ['messages', (r) => String(r.messages)],
    ['deliveries', (r) => String(r.deliveries)],
    ['duplicates delivered', (r) => String(r.duplicatesDelivered)],
    ['worker crashes', (r) => String(r.crashes)],
    ['handler runs', (r) => String(r.handlerRuns)],
    ['duplicate side effects', (r) => String(r.duplicateEffects)],
    ['lost messages', (r) => String(r.lost)],
    ['time', (r) => `${r.ms} ms`],
  ];
  const cells = [columns.map(([title]) => title), ...rows.map((r) => columns.map(([, get]) => get(r)))];
  const widths = columns.map((_, c) => Math.max(...cells.map((line) => line[c]!.length)));
  for (const [i, line] of cells.entries()) {
    console.log(line.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  '));
    if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
}

async function main(): Promise<void> {
  const { scenario, redisUrl } = parseScenario();
  console.log(
    `onceonly demo: ${scenario.messages} messages, ${scenario.workers} workers, ` +
      `${scenario.producerRetryRate * 100}% sent twice by the producer, ` +
      `${scenario.crashRate * 100}% of deliveries crash at each of 3 points (seed ${scenario.seed})\n`,
  );

  const rows = [await runWithout(scenario)];
  if (redisUrl) {
    const { Redis } = await import('ioredis');
    const { RedisStore } = await import('@onceonly/redis');
    const client = new Redis(redisUrl, { maxRetriesPerRequest: 2, lazyConnect: true });
    try {
      await client.connect();
    } catch (error) {
      console.error(`demo: cannot reach Redis at ${redisUrl}: ${(error as Error).message}`);
      process.exit(1);
    }
    try {
      rows.push(await runWith(scenario, new RedisStore({ client, prefix: 'onceonly-demo' }), 'with onceonly (redis)'));
    } finally {
      client.disconnect();
    }
  } else {
    rows.push(await runWith(scenario, new MemoryStore(), 'with onceonly (memory)'));
  }
  printTable(rows);

  const protectedRow = rows[1]!;
  console.log(
    '\nCrashes between the side effect and its completion are settled by the reconcile policy, which asks the\n' +
      'downstream ledger whether the effect landed; without it they would run again (see README, "Guarantees").',
  );
  if (protectedRow.duplicateEffects !== 0 || protectedRow.lost !== 0) {
    console.error(`\nFAILED: onceonly let ${protectedRow.duplicateEffects} duplicate side effects through and lost ${protectedRow.lost} messages`);
    process.exit(1);
  }
}

await main();
