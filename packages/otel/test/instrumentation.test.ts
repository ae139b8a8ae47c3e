// Spans and metrics of one processor, read back from the SDK's in-memory exporter and a metric reader.
import { context, metrics, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DedupProcessor, MemoryStore, StoreUnavailableError, type DedupStore } from '@onceonly/core';
import { injectTraceContext, instrumentProcessor, instrumentStore, METRIC, otelInstrumentation, SPAN_EVENT } from '@onceonly/otel';
import { registerContext, sdk, type Sdk } from './sdk.js';

let undo: () => void;
beforeAll(() => {
  undo = registerContext();
});
afterAll(() => undo());

let telemetry: Sdk;
beforeEach(() => {
  telemetry = sdk();
});
afterEach(async () => {
  await telemetry.shutdown();
});

/** A processor wired the way the README says: instrumentation, the store timed, the events counted. */
function traced(options: { store?: DedupStore; scope?: string; system?: string } & Record<string, unknown> = {}) {
  const { tracerProvider, meterProvider } = telemetry;
  const { store = new MemoryStore(), scope = 'emails', system, ...rest } = options;
  const instrumentation = otelInstrumentation({ tracerProvider, meterProvider, ...(system ? { system } : {}) });
  const processor = new DedupProcessor({ scope, store: instrumentStore(store, { meterProvider }), instrumentation, ...rest });
  const stop = instrumentProcessor(processor, { meterProvider });
  return { processor, stop };
}

const kafkaAttributes = {
  'messaging.system': 'kafka',
  'messaging.destination.name': 'orders',
  'messaging.consumer.group.name': 'billing',
  'messaging.destination.partition.id': '3',
  'messaging.kafka.offset': 42,
};

describe('spans', () => {
  it('processed: one CONSUMER "process <destination>" span with the messaging attributes; the handler span is its child', async () => {
    const { processor } = traced();
    const handlerTracer = telemetry.tracerProvider.getTracer('app');
    const outcome = await processor.process({ id: 'm1', payload: { to: 'ada' }, attributes: kafkaAttributes }, async () => {
      await handlerTracer.startActiveSpan('send email', async (span) => {
        await new Promise((resolve) => setTimeout(resolve, 5));
        span.end();
      });
      return 'sent';
    });
    expect(outcome.status).toBe('processed');
    const spans = telemetry.spans();
    const process = spans.find((s) => s.name === 'process orders')!;
    const child = spans.find((s) => s.name === 'send email')!;
    expect(process.kind).toBe(SpanKind.CONSUMER);
    expect(process.attributes).toMatchObject({
      ...kafkaAttributes,
      'messaging.operation.name': 'process',
      'messaging.operation.type': 'process',
      'messaging.message.id': 'm1',
      'onceonly.scope': 'emails',
      'onceonly.outcome': 'processed',
      'onceonly.replayed': false,
      'onceonly.takeover': false,
      'onceonly.handler.runs': 1,
      'onceonly.token': 1,
    });
    expect(process.status.code).toBe(SpanStatusCode.UNSET);
    expect(child.parentSpanContext?.spanId).toBe(process.spanContext().spanId);
    expect(child.spanContext().traceId).toBe(process.spanContext().traceId);
  });

  it('duplicate: the span says replayed, the handler did not run (no child span, 0 runs)', async () => {
    const { processor } = traced();
    const tracer = telemetry.tracerProvider.getTracer('app');
    const handler = () => tracer.startActiveSpan('effect', (span) => span.end());
    await processor.process({ id: 'm1', attributes: kafkaAttributes }, handler);
    const second = await processor.process({ id: 'm1', attributes: kafkaAttributes }, handler);
    expect(second.status).toBe('duplicate');
    const spans = telemetry.spans().filter((s) => s.name === 'process orders');
    expect(spans).toHaveLength(2);
    expect(spans[1]!.attributes).toMatchObject({ 'onceonly.outcome': 'duplicate', 'onceonly.replayed': true, 'onceonly.handler.runs': 0, 'onceonly.takeover': false });
    expect(spans[1]!.status.code).toBe(SpanStatusCode.UNSET);
    expect(telemetry.spans().filter((s) => s.name === 'effect')).toHaveLength(1);
  });

  it('conflict: an error span with error.type PAYLOAD_CONFLICT, no exception recorded by default', async () => {
    const { processor } = traced({ system: 'custom' });
    await processor.process({ id: 'm1', payload: { amount: 1 } }, () => 1);
    const outcome = await processor.process({ id: 'm1', payload: { amount: 2 } }, () => 2);
    expect(outcome.status).toBe('conflict');
    const span = telemetry.spans()[1]!;
    expect(span.name).toBe('process');
    expect(span.attributes).toMatchObject({ 'messaging.system': 'custom', 'onceonly.outcome': 'conflict', 'error.type': 'PAYLOAD_CONFLICT', 'onceonly.replayed': false });
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'PAYLOAD_CONFLICT' });
    expect(span.events).toEqual([]);
  });

  it('failed: error.type is the error class name; recordExceptions adds the exception event', async () => {
    const { tracerProvider } = telemetry;
    const processor = new DedupProcessor({ scope: 's', instrumentation: otelInstrumentation({ tracerProvider, recordExceptions: true }) });
    class MailerDown extends Error {
      override name = 'MailerDown';
    }
    const outcome = await processor.process({ id: 'm1' }, () => {
      throw new MailerDown('smtp said no');
    });
    expect(outcome.status).toBe('failed');
    const [span] = telemetry.spans();
    expect(span!.attributes['error.type']).toBe('MailerDown');
    expect(span!.events.map((e) => e.name)).toEqual(['exception']);
  });

  it('takeover: the span carries onceonly.takeover and a takeover event; the counter counts it', async () => {
    let now = Date.now();
    const store = new MemoryStore({ clock: () => now });
    await store.claim({ scope: 'emails', id: 'm1', leaseMs: 1_000, windowMs: 60_000 }); // a worker that died mid-handler
    now += 2_000;
    const { processor } = traced({ store, leaseMs: 1_000 });
    const outcome = await processor.process({ id: 'm1' }, () => 'again');
    expect(outcome).toMatchObject({ status: 'processed', takeover: true });
    const [span] = telemetry.spans();
    expect(span!.attributes).toMatchObject({ 'onceonly.takeover': true, 'onceonly.outcome': 'processed', 'onceonly.token': 2 });
    expect(span!.events.map((e) => [e.name, e.attributes])).toEqual([[SPAN_EVENT.takeover, { 'onceonly.takeover.policy': 'retry', 'onceonly.token': 2 }]]);
    expect(await telemetry.total(METRIC.takeovers, { 'onceonly.scope': 'emails', 'onceonly.takeover.policy': 'retry' })).toBe(1);
  });

  it('a takeover whose run fails is still marked (from the event)', async () => {
    let now = Date.now();
    const store = new MemoryStore({ clock: () => now });
    await store.claim({ scope: 'emails', id: 'm1', leaseMs: 1_000, windowMs: 60_000 });
    now += 2_000;
    const { processor } = traced({ store, leaseMs: 1_000 });
    const outcome = await processor.process({ id: 'm1' }, () => {
      throw new Error('still down');
    });
    expect(outcome.status).toBe('failed');
    expect(telemetry.spans()[0]!.attributes).toMatchObject({ 'onceonly.takeover': true, 'onceonly.outcome': 'failed', 'error.type': 'Error' });
  });

  it('store down: store-unavailable on the span, store errors counted, the failed store call timed with its error.type', async () => {
    const failing = new MemoryStore();
    failing.claim = () => Promise.reject(new StoreUnavailableError('connection refused (test)'));
    const { processor } = traced({ store: failing });
    const outcome = await processor.process({ id: 'm1', attributes: kafkaAttributes }, () => 1);
    expect(outcome.status).toBe('store-unavailable');
    const [span] = telemetry.spans();
    expect(span!.attributes).toMatchObject({ 'onceonly.outcome': 'store-unavailable', 'error.type': 'STORE_UNAVAILABLE', 'onceonly.handler_ran': false });
    expect(span!.status.code).toBe(SpanStatusCode.ERROR);
    expect(span!.events.map((e) => e.name)).toEqual([SPAN_EVENT.storeError]);
    expect(await telemetry.total(METRIC.storeErrors, { 'onceonly.scope': 'emails', 'onceonly.store.operation': 'claim', 'error.type': 'STORE_UNAVAILABLE' })).toBe(1);
    expect(await telemetry.total(METRIC.storeDuration, { 'onceonly.store.operation': 'claim', 'error.type': 'STORE_UNAVAILABLE' })).toBe(1);
    expect(await telemetry.total(METRIC.outcomes, { 'onceonly.outcome': 'store-unavailable' })).toBe(1);
    expect(await telemetry.total(METRIC.processDuration, { 'onceonly.outcome': 'store-unavailable', 'error.type': 'STORE_UNAVAILABLE', 'messaging.system': 'kafka' })).toBe(1);
  });

  it('a batch whose claim round trip fails: the message it stopped at has its span (handler not run), the outcome and the store error counted', async () => {
    const failing = new MemoryStore();
    failing.claimMany = () => Promise.reject(new StoreUnavailableError('down (test)'));
    const { processor } = traced({ store: failing });
    const batch = await processor.processBatch([{ id: 'a' }, { id: 'b' }], () => 1);
    expect(batch).toMatchObject({ done: 0, outcomes: [{ status: 'store-unavailable' }] });
    const spans = telemetry.spans();
    expect(spans).toHaveLength(1);
    expect(spans[0]!.attributes).toMatchObject({ 'messaging.message.id': 'a', 'onceonly.outcome': 'store-unavailable', 'onceonly.handler_ran': false, 'error.type': 'STORE_UNAVAILABLE' });
    expect(spans[0]!.status.code).toBe(SpanStatusCode.ERROR);
    expect(await telemetry.total(METRIC.outcomes, { 'onceonly.outcome': 'store-unavailable' })).toBe(1);
    expect(await telemetry.total(METRIC.storeErrors, { 'onceonly.store.operation': 'claimMany' })).toBe(1);
    expect(await telemetry.total(METRIC.inFlight)).toBe(0);
  });

  it('fail-open: the unprotected run is counted and marked on its span', async () => {
    const failing = new MemoryStore();
    failing.claim = () => Promise.reject(new StoreUnavailableError('down (test)'));
    const { processor } = traced({ store: failing, onStoreError: 'fail-open' });
    const outcome = await processor.process({ id: 'm1' }, () => 1);
    expect(outcome).toMatchObject({ status: 'processed', failOpen: true });
    const [span] = telemetry.spans();
    expect(span!.attributes).toMatchObject({ 'onceonly.fail_open': true });
    expect(span!.events.map((e) => e.name)).toContain(SPAN_EVENT.failOpen);
    expect(await telemetry.total(METRIC.failOpen, { 'onceonly.scope': 'emails' })).toBe(1);
  });

  it('processBatch: one span per message, repeats inside the batch are duplicates', async () => {
    const { processor } = traced();
    const batch = await processor.processBatch(
      [{ id: 'a' }, { id: 'b' }, { id: 'a' }].map((m) => ({ ...m, attributes: kafkaAttributes })),
      () => 'ok',
      { concurrency: 2, ordering: 'none' },
    );
    expect(batch.done).toBe(3);
    const outcomes = telemetry
      .spans()
      .map((s) => `${String(s.attributes['messaging.message.id'])} ${String(s.attributes['onceonly.outcome'])}`)
      .sort();
    expect(outcomes).toEqual(['a duplicate', 'a processed', 'b processed']);
  });
});

describe('trace context', () => {
  it('the process span links to the producer span whose context was injected into the carrier', async () => {
    const { processor } = traced();
    const producer = telemetry.tracerProvider.getTracer('producer');
    const carrier: Record<string, unknown> = {};
    const send = producer.startSpan('send orders', { kind: SpanKind.PRODUCER });
    context.with(trace.setSpan(context.active(), send), () => injectTraceContext(carrier));
    send.end();
    expect(carrier['traceparent']).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    // Kafka hands headers over as bytes.
    await processor.process({ id: 'm1', carrier: { traceparent: Buffer.from(String(carrier['traceparent'])) }, attributes: kafkaAttributes }, () => 1);
    const process = telemetry.spans().find((s) => s.name === 'process orders')!;
    expect(process.links.map((l) => l.context.spanId)).toEqual([send.spanContext().spanId]);
    expect(process.spanContext().traceId).not.toBe(send.spanContext().traceId); // a new trace, linked (the conventions' default)
    expect(process.parentSpanContext).toBeUndefined();
  });

  it("creationContext: 'parent' continues the producer's trace", async () => {
    const { tracerProvider } = telemetry;
    const processor = new DedupProcessor({ scope: 's', instrumentation: otelInstrumentation({ tracerProvider, creationContext: 'parent' }) });
    const send = tracerProvider.getTracer('producer').startSpan('send');
    const carrier: Record<string, unknown> = {};
    context.with(trace.setSpan(context.active(), send), () => injectTraceContext(carrier));
    send.end();
    await processor.process({ id: 'm1', carrier }, () => 1);
    const process = telemetry.spans().find((s) => s.name === 'process')!;
    expect(process.spanContext().traceId).toBe(send.spanContext().traceId);
    expect(process.parentSpanContext?.spanId).toBe(send.spanContext().spanId);
    expect(process.links.map((l) => l.context.spanId)).toEqual([send.spanContext().spanId]);
  });

  it('injectTraceContext keeps a carrier that already holds a traceparent, and writes nothing without an active span', async () => {
    const kept = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' };
    const send = telemetry.tracerProvider.getTracer('p').startSpan('send');
    context.with(trace.setSpan(context.active(), send), () => injectTraceContext(kept));
    send.end();
    expect(kept.traceparent).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    const empty: Record<string, unknown> = {};
    injectTraceContext(empty);
    expect(empty).toEqual({});
  });
});

describe('metrics', () => {
  it('outcomes by scope, status and replayed; process and handler durations; messages in flight', async () => {
    const { processor } = traced();
    let inFlight = -1;
    await processor.process({ id: 'm1', attributes: kafkaAttributes }, async () => {
      inFlight = await telemetry.total(METRIC.inFlight, { 'onceonly.scope': 'emails' });
    });
    await processor.process({ id: 'm1', attributes: kafkaAttributes }, () => undefined);
    await processor.process({ id: 'm2', attributes: kafkaAttributes }, () => undefined);
    expect(inFlight).toBe(1);
    expect(await telemetry.total(METRIC.inFlight, { 'onceonly.scope': 'emails' })).toBe(0);
    expect(await telemetry.total(METRIC.outcomes, { 'onceonly.scope': 'emails', 'onceonly.outcome': 'processed', 'onceonly.replayed': false })).toBe(2);
    expect(await telemetry.total(METRIC.outcomes, { 'onceonly.scope': 'emails', 'onceonly.outcome': 'duplicate', 'onceonly.replayed': true })).toBe(1);
    const process = await telemetry.metric(METRIC.processDuration);
    expect(process?.descriptor.unit).toBe('s');
    expect(await telemetry.total(METRIC.processDuration, { 'messaging.operation.name': 'process', 'messaging.system': 'kafka', 'messaging.destination.name': 'orders', 'messaging.consumer.group.name': 'billing', 'onceonly.outcome': 'processed' })).toBe(2);
    expect(await telemetry.total(METRIC.handlerDuration, { 'onceonly.scope': 'emails' })).toBe(2);
    // The store: one claim and one completion per fresh message, one claim for the duplicate.
    expect(await telemetry.total(METRIC.storeDuration, { 'onceonly.store': 'MemoryStore', 'onceonly.store.operation': 'claim' })).toBe(3);
    expect(await telemetry.total(METRIC.storeDuration, { 'onceonly.store.operation': 'complete' })).toBe(2);
  });

  it('a handler that throws is timed with its error.type', async () => {
    const { processor } = traced();
    await processor.process({ id: 'm1' }, async () => {
      throw new TypeError('bad');
    });
    expect(await telemetry.total(METRIC.handlerDuration, { 'error.type': 'TypeError' })).toBe(1);
    expect(await telemetry.total(METRIC.outcomes, { 'onceonly.outcome': 'failed' })).toBe(1);
  });
});

describe('robustness', () => {
  it('a tracer that throws never fails the message: it runs untraced', async () => {
    const broken = { getTracer: () => ({ startSpan: () => { throw new Error('sdk bug'); }, startActiveSpan: () => { throw new Error('sdk bug'); } }) };
    const processor = new DedupProcessor({ scope: 's', instrumentation: otelInstrumentation({ tracerProvider: broken as never }) });
    const outcome = await processor.process({ id: 'm1' }, () => 'ran');
    expect(outcome).toMatchObject({ status: 'processed', result: 'ran' });
  });
});

describe('nothing registered', () => {
  it('no provider: start() answers undefined, the store is not wrapped, no listener is added', async () => {
    expect(trace.getTracerProvider().getTracer('t').startSpan('x').isRecording()).toBe(false); // no global SDK in these tests
    const instrumentation = otelInstrumentation();
    expect(instrumentation.start({ scope: 's', id: 'm1' })).toBeUndefined();
    const store = new MemoryStore();
    expect(instrumentStore(store)).toBe(store);
    const processor = new DedupProcessor({ scope: 's', store, instrumentation });
    let subscribed = 0;
    const on = processor.on.bind(processor);
    expect(instrumentProcessor({ options: processor.options, on: ((...args: Parameters<typeof on>) => (subscribed++, on(...args))) as typeof on })).toBeTypeOf('function');
    // The processor's instrumentation is an OtelInstrumentation: it subscribes to put events on spans.
    expect(subscribed).toBeGreaterThan(0);
    subscribed = 0;
    instrumentProcessor({ options: {}, on: ((...args: Parameters<typeof on>) => (subscribed++, on(...args))) as typeof on });
    expect(subscribed).toBe(0);
    expect((await processor.process({ id: 'm1' }, () => 1)).status).toBe('processed');
  });

  it('a global tracer provider registered after the instrumentation was made is used from the next message on', async () => {
    const instrumentation = otelInstrumentation();
    const processor = new DedupProcessor({ scope: 's', instrumentation });
    await processor.process({ id: 'before' }, () => 1);
    expect(trace.setGlobalTracerProvider(telemetry.tracerProvider)).toBe(true);
    try {
      await processor.process({ id: 'after' }, () => 1);
    } finally {
      trace.disable();
    }
    expect(telemetry.spans().map((s) => s.attributes['messaging.message.id'])).toEqual(['after']);
  });

  it('metrics use the global meter provider as it is when the instruments are made', async () => {
    expect(metrics.setGlobalMeterProvider(telemetry.meterProvider)).toBe(true);
    try {
      const processor = new DedupProcessor({ scope: 'global', instrumentation: otelInstrumentation() });
      await processor.process({ id: 'm1' }, () => 1);
    } finally {
      metrics.disable();
    }
    expect(await telemetry.total(METRIC.processDuration, { 'onceonly.scope': 'global', 'onceonly.outcome': 'processed' })).toBe(1);
  });
});
