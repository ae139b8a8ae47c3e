// What the Kafka adapter hands an instrumentation (the headers as the trace carrier, the messaging
// attributes) and how its producer helpers let one inject the trace context. No OpenTelemetry here.
import { describe, expect, it } from 'vitest';
import { InvalidOptionsError, MemoryStore, type Instrumentation, type MessageInfo } from '@onceonly/core';
import type { IHeaders, KafkaMessage } from 'kafkajs';
import { KafkaDedup, stampMessages, withMessageIds, type MessageHeaders } from '@onceonly/kafka';
import { batchPayload } from './batch-payload.js';

const message = (offset: number, headers: IHeaders): KafkaMessage => ({ key: Buffer.from('k'), value: Buffer.from('v'), timestamp: '0', attributes: 0, offset: String(offset), headers });

describe('Kafka adapter: trace context', () => {
  it('gives an instrumentation the headers as the carrier and the messaging attributes (never the key)', async () => {
    const seen: MessageInfo[] = [];
    const instrumentation: Instrumentation = { start: (info) => void seen.push(info) };
    const dedup = new KafkaDedup({ groupId: 'billing', store: new MemoryStore(), processor: { instrumentation } });
    const headers = { 'onceonly-id': Buffer.from('m1'), traceparent: Buffer.from('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01') };
    await dedup.eachBatch(async () => undefined)(batchPayload([message(41, headers), message(42, { 'onceonly-id': 'm2' })], { partition: 3 }).payload);
    expect(seen).toHaveLength(2);
    expect(seen[0]).toEqual({
      scope: 'billing',
      id: 'm1',
      carrier: headers,
      attributes: {
        'messaging.system': 'kafka',
        'messaging.destination.name': 'orders',
        'messaging.consumer.group.name': 'billing',
        'messaging.destination.partition.id': '3',
        'messaging.kafka.offset': 41,
      },
    });
    expect(seen[1]).toMatchObject({ id: 'm2', carrier: { 'onceonly-id': 'm2' }, attributes: { 'messaging.kafka.offset': 42 } });
  });

  it('stampMessages / withMessageIds call inject once per message with its copied headers; a traceparent is kept', async () => {
    const injected: MessageHeaders[] = [];
    const inject = (headers: MessageHeaders) => {
      injected.push(headers);
      headers['traceparent'] = 'injected';
    };
    const given = { value: 'b', headers: { traceparent: 'mine' } };
    const stamped = stampMessages([{ value: 'a' }, given], { inject });
    expect(stamped.map((m) => m.headers['traceparent'])).toEqual(['injected', 'mine']);
    expect(injected).toEqual([stamped[0]!.headers]);
    expect(given.headers).toEqual({ traceparent: 'mine' }); // the caller's message is not changed

    const sent: unknown[] = [];
    const producer = withMessageIds({ send: async (record: { messages: readonly { headers?: MessageHeaders }[] }) => void sent.push(record) }, { inject });
    await producer.send({ messages: [{ value: 'c' }] } as never);
    expect((sent[0] as { messages: { headers: MessageHeaders }[] }).messages[0]!.headers['traceparent']).toBe('injected');
    expect(() => stampMessages([{ value: 'a' }], { inject: 'nope' as never })).toThrow(InvalidOptionsError);
  });
});
