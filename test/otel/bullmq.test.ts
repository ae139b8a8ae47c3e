// OpenTelemetry across a real BullMQ worker on a real Redis: one process span per job with the
// messaging attributes, the producer's trace context carried in the job's options, and the metrics of
// processed, duplicate, conflict, takeover and store-down deliveries.
import { context, SpanStatusCode, trace } from '@opentelemetry/api';
import { addStamped, createWorker, stamp } from '@onceonly/bullmq';
import { DedupProcessor, StoreUnavailableError, type DedupStore, type Outcome } from '@onceonly/core';
import { injectTraceContext, instrumentProcessor, instrumentStore, METRIC, otelInstrumentation, SPAN_EVENT } from '@onceonly/otel';
import { RedisStore } from '@onceonly/redis';
import { Queue, type Job, type Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { registerContext, sdk } from '../../packages/otel/test/sdk.js';
import { randomName } from '../support/kafka/broker.js';

let undo: () => void;
beforeAll(() => {
  undo = registerContext();
});
afterAll(() => undo());

/** A queue, a worker whose processor is traced and measured, and its Redis store. */
async function setup(options: { leaseMs?: number; store?: (inner: RedisStore) => DedupStore } = {}) {
  const telemetry = sdk();
  const { tracerProvider, meterProvider } = telemetry;
  const name = randomName('otel-q');
  const client = new Redis(inject('redisUrl'), { maxRetriesPerRequest: 1 });
  const redisStore = new RedisStore({ client, prefix: `oo-${name}` });
  const store = instrumentStore(options.store ? options.store(redisStore) : redisStore, { meterProvider, name: 'RedisStore' });
  const processor = new DedupProcessor({
    scope: name,
    store,
    leaseMs: options.leaseMs ?? 30_000,
    recordResults: true,
    instrumentation: otelInstrumentation({ tracerProvider, meterProvider }),
  });
  const stop = instrumentProcessor(processor, { meterProvider });
  const outcomes: Outcome[] = [];
  processor.on('outcome', (o) => outcomes.push(o));
  const effects: string[] = [];
  const app = tracerProvider.getTracer('app');
  const worker: Worker = createWorker<{ to: string }>(
    name,
    async (job, { id }) =>
      app.startActiveSpan('send email', (span) => {
        effects.push(id);
        span.end();
        return { sentTo: job.data.to };
      }),
    { connection: { url: inject('redisUrl'), maxRetriesPerRequest: null }, concurrency: 4, onceonly: { processor } },
  );
  const queue = new Queue(name, { connection: { url: inject('redisUrl') } });
  const producer = tracerProvider.getTracer('producer');
  /** Adds a job inside a producer span, its trace context injected into the job's options. */
  const add = async (data: Record<string, unknown>, opts: { attempts?: number } = {}) => {
    const span = producer.startSpan(`send ${name}`);
    try {
      return await context.with(trace.setSpan(context.active(), span), () => addStamped(queue, 'welcome', data, opts, { inject: injectTraceContext }));
    } finally {
      span.end();
    }
  };
  const settled = async (job: Job, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const state = await job.getState();
      if (state === 'completed' || state === 'failed') return state;
      if (Date.now() > deadline) throw new Error(`job ${job.id} still "${state}"`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  /** Waits until `n` outcomes were emitted (a job settles in BullMQ a moment after its outcome). */
  const outcomesReach = async (n: number) => {
    const deadline = Date.now() + 20_000;
    while (outcomes.length < n) {
      if (Date.now() > deadline) throw new Error(`${outcomes.length} outcomes, not ${n}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const processSpans = () => telemetry.spans().filter((s) => s.name === `process ${name}`);
  cleanups.push(async () => {
    stop();
    await worker.close();
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
    client.disconnect();
    await telemetry.shutdown();
  });
  return { telemetry, name, client, redisStore, processor, outcomes, effects, add, settled, outcomesReach, processSpans };
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('otel: BullMQ', () => {
  it('processed and duplicate: a process span per job linked to the producer, the duplicate visible; outcome and store metrics', async () => {
    const t = await setup();
    const data = stamp({ to: 'ada@example.com' });
    const first = await t.add(data);
    expect(await t.settled(first)).toBe('completed');
    const again = await t.add(data); // a retried add: same stamp, a new trace context
    expect(await t.settled(again)).toBe('completed');
    await t.outcomesReach(2);
    expect(t.effects).toEqual([data.onceonlyId]);

    const [processed, duplicate] = t.processSpans();
    const attributes = { 'messaging.system': 'bullmq', 'messaging.destination.name': t.name, 'messaging.message.id': data.onceonlyId, 'onceonly.scope': t.name };
    expect(processed!.attributes).toMatchObject({ ...attributes, 'onceonly.outcome': 'processed', 'onceonly.replayed': false, 'onceonly.takeover': false });
    expect(duplicate!.attributes).toMatchObject({ ...attributes, 'onceonly.outcome': 'duplicate', 'onceonly.replayed': true, 'onceonly.handler.runs': 0 });
    // Trace context: each job's span links to the producer span that added it.
    const sends = t.telemetry.spans().filter((s) => s.name === `send ${t.name}`);
    expect(processed!.links.map((l) => l.context.spanId)).toEqual([sends[0]!.spanContext().spanId]);
    expect(duplicate!.links.map((l) => l.context.spanId)).toEqual([sends[1]!.spanContext().spanId]);
    // The handler's own span is a child of the job's.
    const handler = t.telemetry.spans().find((s) => s.name === 'send email')!;
    expect(handler.parentSpanContext?.spanId).toBe(processed!.spanContext().spanId);

    expect(await t.telemetry.total(METRIC.outcomes, { 'onceonly.scope': t.name, 'onceonly.outcome': 'processed', 'onceonly.replayed': false })).toBe(1);
    expect(await t.telemetry.total(METRIC.outcomes, { 'onceonly.scope': t.name, 'onceonly.outcome': 'duplicate', 'onceonly.replayed': true })).toBe(1);
    expect(await t.telemetry.total(METRIC.processDuration, { 'messaging.system': 'bullmq', 'messaging.destination.name': t.name })).toBe(2);
    expect(await t.telemetry.total(METRIC.handlerDuration, { 'onceonly.scope': t.name })).toBe(1);
    expect(await t.telemetry.total(METRIC.storeDuration, { 'onceonly.store': 'RedisStore', 'onceonly.store.operation': 'claim' })).toBe(2);
    expect(await t.telemetry.total(METRIC.storeDuration, { 'onceonly.store': 'RedisStore', 'onceonly.store.operation': 'complete' })).toBe(1);
    expect(await t.telemetry.total(METRIC.inFlight, { 'onceonly.scope': t.name })).toBe(0);
  });

  it('conflict: the same ID with other data fails the job; its span is an error PAYLOAD_CONFLICT', async () => {
    const t = await setup();
    const data = stamp({ to: 'ada@example.com' });
    expect(await t.settled(await t.add(data))).toBe('completed');
    const other = await t.add({ ...data, to: 'mallory@example.com' }, { attempts: 3 });
    expect(await t.settled(other)).toBe('failed');
    await t.outcomesReach(2);
    const span = t.processSpans()[1]!;
    expect(span.attributes).toMatchObject({ 'onceonly.outcome': 'conflict', 'error.type': 'PAYLOAD_CONFLICT' });
    expect(span.status.code).toBe(SpanStatusCode.ERROR);
    expect(await t.telemetry.total(METRIC.outcomes, { 'onceonly.outcome': 'conflict' })).toBe(1);
  });

  it('takeover: a job whose earlier owner died mid-handler is run again, marked as a takeover', async () => {
    const t = await setup({ leaseMs: 1_000 });
    const data = stamp({ to: 'ada@example.com' });
    // A worker claimed the ID and died: its lease (judged by Redis' clock) runs out.
    const dead = await t.redisStore.claim({ scope: t.name, id: data.onceonlyId!, leaseMs: 200, windowMs: 60_000 });
    if (dead.status !== 'acquired') throw new Error('expected to acquire the claim');
    await new Promise((r) => setTimeout(r, 400));
    expect(await t.settled(await t.add(data))).toBe('completed');
    await t.outcomesReach(1);
    const [span] = t.processSpans();
    expect(span!.attributes).toMatchObject({ 'onceonly.outcome': 'processed', 'onceonly.takeover': true });
    expect(span!.attributes['onceonly.token']).toBeGreaterThan(dead.token);
    expect(span!.events.map((e) => e.name)).toEqual([SPAN_EVENT.takeover]);
    expect(await t.telemetry.total(METRIC.takeovers, { 'onceonly.scope': t.name, 'onceonly.takeover.policy': 'retry' })).toBe(1);
  });

  it('store down: the job fails retriably, its span says store-unavailable, the store error is counted', async () => {
    const t = await setup({
      store: (inner) =>
        new Proxy(inner, {
          get: (target, property) => {
            if (property === 'claim' || property === 'claimMany') return () => Promise.reject(new StoreUnavailableError('connection refused (test)'));
            const value: unknown = Reflect.get(target, property, target);
            return typeof value === 'function' ? value.bind(target) : value;
          },
        }),
    });
    const job = await t.add(stamp({ to: 'ada@example.com' }), { attempts: 1 });
    expect(await t.settled(job)).toBe('failed');
    await t.outcomesReach(1);
    expect(t.effects).toEqual([]);
    const [span] = t.processSpans();
    expect(span!.attributes).toMatchObject({ 'onceonly.outcome': 'store-unavailable', 'error.type': 'STORE_UNAVAILABLE', 'onceonly.handler_ran': false });
    expect(span!.status.code).toBe(SpanStatusCode.ERROR);
    expect(await t.telemetry.total(METRIC.storeErrors, { 'onceonly.scope': t.name, 'onceonly.store.operation': 'claim', 'error.type': 'STORE_UNAVAILABLE' })).toBe(1);
    expect(await t.telemetry.total(METRIC.storeDuration, { 'onceonly.store.operation': 'claim', 'error.type': 'STORE_UNAVAILABLE' })).toBe(1);
    expect(await t.telemetry.total(METRIC.outcomes, { 'onceonly.outcome': 'store-unavailable' })).toBe(1);
  });
});
