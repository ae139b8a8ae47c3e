// OpenTelemetry across a real Kafka consumer group: a process span per message with the messaging
// attributes (topic, group, partition, offset), the producer's trace context carried in the headers,
// and the metrics of processed, duplicate, conflict, takeover and store-down deliveries.
import { context, SpanStatusCode, trace } from '@opentelemetry/api';
import { StoreUnavailableError, type DedupStore } from '@onceonly/core';
import { KafkaDedup, readHeaderId, stampMessages, withMessageIds } from '@onceonly/kafka';
import { injectTraceContext, instrumentProcessor, instrumentStore, METRIC, otelInstrumentation, SPAN_EVENT } from '@onceonly/otel';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { registerContext, sdk, type Sdk } from '../../packages/otel/test/sdk.js';
import { createTopic } from '../support/kafka/broker.js';
import { kafkajs } from '../kafka/clients.js';
import { brokers, connectProducer, consumeAll as consumeWith, groupName, kafkaClient, newTopic, redisFixture, sendAll } from '../kafka/kafka-test-context.js';

let undo: () => void;
beforeAll(() => {
  undo = registerContext();
});
afterAll(() => undo());

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

/** Runs a kafkajs consumer of `groupId` over `topic` until `expectedDone` messages are done and every offset is committed. */
const consumeAll = (options: Omit<Parameters<typeof consumeWith>[0], 'client'>) => consumeWith({ ...options, client: kafkajs });

async function fixture() {
  const telemetry: Sdk = sdk();
  const redis = await redisFixture();
  cleanups.push(() => telemetry.shutdown(), () => redis.close());
  return { telemetry, redis, kafka: kafkaClient() };
}

/** A KafkaDedup whose processor is traced and measured, over `store` (timed). */
function tracedDedup(telemetry: Sdk, groupId: string, store: DedupStore, extra: Partial<ConstructorParameters<typeof KafkaDedup>[0]> = {}) {
  const { tracerProvider, meterProvider } = telemetry;
  const dedup = new KafkaDedup({
    groupId,
    store: instrumentStore(store, { meterProvider, name: 'RedisStore' }),
    processor: { instrumentation: otelInstrumentation({ tracerProvider, meterProvider }) },
    ...extra,
  });
  const stop = instrumentProcessor(dedup.processor, { meterProvider });
  cleanups.push(async () => {
    stop();
    await dedup.close();
  });
  return dedup;
}

describe('otel: Kafka', () => {
  it('processed, duplicate, conflict and takeover: spans with the messaging attributes, linked to the producers; outcome and store metrics', async () => {
    const { telemetry, redis, kafka } = await fixture();
    const topic = await newTopic('otel', 2);
    await createTopic(brokers(), `${topic}.DLT`, 1);
    const groupId = groupName('otel');
    const producerTracer = telemetry.tracerProvider.getTracer('producer');
    const producer = await connectProducer(kafka);
    cleanups.push(() => producer.disconnect());

    // A: stamped (IDs and trace context) once inside a producer span, then sent twice (a retried send).
    const sendA = producerTracer.startSpan(`send ${topic}`);
    const a = context.with(trace.setSpan(context.active(), sendA), () =>
      stampMessages(Array.from({ length: 10 }, (_, i) => ({ key: `a${i}`, value: `a${i}` })), { inject: injectTraceContext }),
    );
    sendA.end();
    await sendAll(producer, topic, a);
    await sendAll(producer, topic, a);
    // B: the producer wrapper stamps and injects as it sends.
    const stamping = withMessageIds(producer, { inject: injectTraceContext });
    const sendB = producerTracer.startSpan(`send ${topic}`);
    await context.with(trace.setSpan(context.active(), sendB), () =>
      stamping.send({ topic, messages: Array.from({ length: 10 }, (_, i) => ({ key: `b${i}`, value: `b${i}` })) }),
    );
    sendB.end();
    // A conflict: the ID of a0 with another value.
    const a0 = readHeaderId(a[0]!.headers, 'onceonly-id');
    await producer.send({ topic, messages: [{ key: 'a0', value: 'not a0', headers: { 'onceonly-id': a0 } }] });
    // A takeover: a consumer claimed this ID and died mid-handler (its lease runs out before we consume).
    const [dead] = stampMessages([{ key: 'd', value: 'd' }]);
    const deadId = readHeaderId(dead!.headers, 'onceonly-id');
    const claim = await redis.store.claim({ scope: groupId, id: deadId, leaseMs: 200, windowMs: 60_000 });
    expect(claim.status).toBe('acquired');
    await producer.send({ topic, messages: [dead!] });
    await new Promise((resolve) => setTimeout(resolve, 400));

    const deadLetters = await connectProducer(kafka);
    cleanups.push(() => deadLetters.disconnect());
    const dedup = tracedDedup(telemetry, groupId, redis.store, { deadLetter: { producer: deadLetters } });
    const handlerTracer = telemetry.tracerProvider.getTracer('app');
    // 10 + 10 duplicates + 10 + the takeover; the conflict is dead-lettered (not counted as done by consumeAll).
    await consumeAll({
      kafka,
      dedup,
      groupId,
      topic,
      expectedDone: 31,
      handler: async (_message, { id }) => handlerTracer.startActiveSpan('effect', (span) => (span.end(), redis.apply(id))),
    });

    const spans = telemetry.spans().filter((s) => s.name === `process ${topic}`);
    expect(spans).toHaveLength(32);
    const common = { 'messaging.system': 'kafka', 'messaging.destination.name': topic, 'messaging.consumer.group.name': groupId, 'onceonly.scope': groupId };
    for (const span of spans) {
      expect(span.attributes).toMatchObject(common);
      expect(['0', '1']).toContain(span.attributes['messaging.destination.partition.id']);
      expect(span.attributes['messaging.kafka.offset']).toBeTypeOf('number');
    }
    const by = (outcome: string) => spans.filter((s) => s.attributes['onceonly.outcome'] === outcome);
    expect(by('processed')).toHaveLength(21);
    expect(by('duplicate')).toHaveLength(10);
    expect(by('duplicate').every((s) => s.attributes['onceonly.replayed'] === true && s.attributes['onceonly.handler.runs'] === 0)).toBe(true);
    // Trace context: A's spans (processed and duplicate) link to sendA, B's to sendB.
    const linkOf = (span: (typeof spans)[number]) => span.links[0]?.context.spanId;
    const idsA = new Set(a.map((m) => readHeaderId(m.headers, 'onceonly-id')));
    for (const span of spans.filter((s) => idsA.has(String(s.attributes['messaging.message.id'])) && s.attributes['onceonly.outcome'] !== 'dead-lettered')) {
      expect(linkOf(span)).toBe(sendA.spanContext().spanId);
    }
    expect(spans.filter((s) => linkOf(s) === sendB.spanContext().spanId)).toHaveLength(10);
    // The handlers' spans are children of their messages' spans.
    const effects = telemetry.spans().filter((s) => s.name === 'effect');
    expect(effects).toHaveLength(21);
    const spanIds = new Set(by('processed').map((s) => s.spanContext().spanId));
    expect(effects.every((e) => spanIds.has(e.parentSpanContext!.spanId))).toBe(true);
    // Conflict: dead-lettered, an error span saying why.
    const [conflict] = by('dead-lettered');
    expect(conflict!.attributes).toMatchObject({ 'messaging.message.id': a0, 'error.type': 'PAYLOAD_CONFLICT' });
    expect(conflict!.status.code).toBe(SpanStatusCode.ERROR);
    // Takeover.
    const takeover = spans.find((s) => s.attributes['messaging.message.id'] === deadId)!;
    expect(takeover.attributes).toMatchObject({ 'onceonly.outcome': 'processed', 'onceonly.takeover': true });
    expect(takeover.events.map((e) => e.name)).toContain(SPAN_EVENT.takeover);

    expect(await telemetry.total(METRIC.outcomes, { 'onceonly.scope': groupId, 'onceonly.outcome': 'processed', 'onceonly.replayed': false })).toBe(21);
    expect(await telemetry.total(METRIC.outcomes, { 'onceonly.scope': groupId, 'onceonly.outcome': 'duplicate', 'onceonly.replayed': true })).toBe(10);
    expect(await telemetry.total(METRIC.outcomes, { 'onceonly.scope': groupId, 'onceonly.outcome': 'dead-lettered' })).toBe(1);
    expect(await telemetry.total(METRIC.takeovers, { 'onceonly.scope': groupId })).toBe(1);
    expect(await telemetry.total(METRIC.poisoned, { 'onceonly.scope': groupId, 'error.type': 'PAYLOAD_CONFLICT', 'onceonly.dead_lettered': true })).toBe(1);
    expect(await telemetry.total(METRIC.processDuration, { 'messaging.system': 'kafka', 'messaging.consumer.group.name': groupId })).toBe(32);
    expect(await telemetry.total(METRIC.handlerDuration, { 'onceonly.scope': groupId })).toBe(21);
    // The batch path: claims and completions in marked batch round trips.
    expect(await telemetry.total(METRIC.storeDuration, { 'onceonly.store': 'RedisStore', 'onceonly.store.operation': 'claimManyMarked' })).toBeGreaterThan(0);
    expect(await telemetry.total(METRIC.storeDuration, { 'onceonly.store': 'RedisStore', 'onceonly.store.operation': 'completeManyMarked' })).toBeGreaterThan(0);
    expect(await telemetry.total(METRIC.inFlight, { 'onceonly.scope': groupId })).toBe(0);
    expect([...(await redis.effects()).values()].every((n) => n === 1)).toBe(true);
  });

  it('store down: the batch waits in place; outcomes and store errors counted; messages whose completion failed end store-unavailable on their spans, then are taken over', async () => {
    const { telemetry, redis, kafka } = await fixture();
    const topic = await newTopic('otel-down', 1);
    const groupId = groupName('otel-down');
    const producer = await connectProducer(kafka);
    await sendAll(producer, topic, stampMessages(Array.from({ length: 5 }, (_, i) => ({ value: `m${i}` })))).finally(() => producer.disconnect());

    // The store refuses the first claim round trip (nothing starts), then the completions of the batch
    // that ran (every attempt at them), then comes back.
    const refusals: Record<string, number> = { claimManyMarked: 1, completeManyMarked: 3 };
    const flaky = new Proxy(redis.store, {
      get(target, property) {
        const value: unknown = Reflect.get(target, property, target);
        if (typeof value !== 'function') return value;
        const method = (value as (...args: unknown[]) => unknown).bind(target);
        if (typeof property !== 'string' || !(property in refusals)) return method;
        return (...args: unknown[]) => (refusals[property]!-- > 0 ? Promise.reject(new StoreUnavailableError('connection refused (test)')) : method(...args));
      },
    });
    const dedup = tracedDedup(telemetry, groupId, flaky, { processor: { instrumentation: otelInstrumentation({ tracerProvider: telemetry.tracerProvider, meterProvider: telemetry.meterProvider }), leaseMs: 1_000 } });
    await consumeAll({ kafka, dedup, groupId, topic, expectedDone: 5, handler: async (_m, { id }) => redis.apply(id) });

    const spans = telemetry.spans().filter((s) => s.name === `process ${topic}`);
    const down = spans.filter((s) => s.attributes['onceonly.outcome'] === 'store-unavailable');
    for (const span of down) {
      expect(span.attributes).toMatchObject({ 'error.type': 'STORE_UNAVAILABLE' });
      expect(span.status.code).toBe(SpanStatusCode.ERROR);
    }
    // The failed claim round trip stopped the batch at its first message: traced, its handler never ran.
    const unclaimed = down.filter((s) => s.attributes['onceonly.handler_ran'] === false);
    expect(unclaimed).toHaveLength(1);
    // Those whose completion failed ran: their effect may have happened, so the redelivery is a
    // takeover once their leases ran out.
    const ran = down.filter((s) => s.attributes['onceonly.handler_ran'] === true);
    expect(ran.length).toBeGreaterThan(0);
    expect(ran.length + unclaimed.length).toBe(down.length);
    const retaken = spans.filter((s) => s.attributes['onceonly.outcome'] === 'processed' && s.attributes['onceonly.takeover'] === true);
    expect(new Set(retaken.map((s) => s.attributes['messaging.message.id']))).toEqual(new Set(ran.map((s) => s.attributes['messaging.message.id'])));
    expect(spans.filter((s) => s.attributes['onceonly.outcome'] === 'processed')).toHaveLength(5);
    // Every store-unavailable outcome has its span, and the store errors are counted.
    expect(await telemetry.total(METRIC.outcomes, { 'onceonly.scope': groupId, 'onceonly.outcome': 'store-unavailable' })).toBe(down.length);
    expect(await telemetry.total(METRIC.storeErrors, { 'onceonly.scope': groupId, 'onceonly.store.operation': 'claimMany', 'error.type': 'STORE_UNAVAILABLE' })).toBe(1);
    expect(await telemetry.total(METRIC.storeErrors, { 'onceonly.scope': groupId, 'error.type': 'STORE_UNAVAILABLE' })).toBeGreaterThanOrEqual(2);
    expect(await telemetry.total(METRIC.storeDuration, { 'onceonly.store.operation': 'claimManyMarked', 'error.type': 'STORE_UNAVAILABLE' })).toBe(1);
    expect(await telemetry.total(METRIC.storeDuration, { 'onceonly.store.operation': 'completeManyMarked', 'error.type': 'STORE_UNAVAILABLE' })).toBe(3);
    expect(await telemetry.total(METRIC.takeovers, { 'onceonly.scope': groupId })).toBe(ran.length);
    expect(await telemetry.total(METRIC.outcomes, { 'onceonly.scope': groupId, 'onceonly.outcome': 'processed' })).toBe(5);
  });
});
