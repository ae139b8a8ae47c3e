import { describe, expect, it } from 'vitest';
import { withMessageIds, stampMessages, type StampableMessage } from '@onceonly/kafka';
import { PrivateFieldsProducer, type ProducerBatch, type ProducerRecord } from './confluent-shapes.js';

const ID = 'onceonly-id';
const idsOf = (messages: readonly StampableMessage[]) => messages.map((m) => m.headers?.[ID]);

/** A kafkajs-shaped producer (closures, no class): what it sent, and its transactions' sends. */
function closureProducer() {
  const sent: { via: string; record: unknown }[] = [];
  const sender = (via: string) => ({
    send: async (record: ProducerRecord) => (sent.push({ via: `${via}.send`, record }), []),
    sendBatch: async (batch: ProducerBatch) => (sent.push({ via: `${via}.sendBatch`, record: batch }), []),
  });
  let commits = 0;
  const producer = {
    ...sender('producer'),
    connect: async () => undefined,
    events: { CONNECT: 'producer.connect' },
    transaction: async () => ({ ...sender('tx'), commit: async () => void commits++, abort: async () => undefined, isActive: () => true }),
  };
  return { producer, sent, commits: () => commits };
}

describe('withMessageIds', () => {
  it("wraps by delegation: a producer with private #fields (like Confluent's) connects, sends and reads state through the wrapper", async () => {
    const producer = new PrivateFieldsProducer();
    const wrapped = withMessageIds(producer, { id: () => 'fixed' });
    await wrapped.connect();
    expect(wrapped.state).toBe('connected'); // a getter reading #state
    expect(producer.state).toBe('connected');
    expect(wrapped).toBeInstanceOf(PrivateFieldsProducer);
    await wrapped.send({ topic: 't', messages: [{ value: 'a' }] });
    await wrapped.sendBatch({ topicMessages: [{ topic: 't', messages: [{ value: 'b' }, { value: 'c', headers: { [ID]: 'keep' } }] }] });
    await wrapped.flush();
    expect(producer.sent.map((s) => [s.kind, s.messages.map((m) => String(m.headers?.[ID]))])).toEqual([
      ['send', ['fixed']],
      ['sendBatch', ['fixed', 'keep']],
    ]);
    await wrapped.disconnect();
    expect(producer.state).toBe('disconnected');
  });

  it("stamps what is sent through a Confluent transaction (the producer is the transaction)", async () => {
    const producer = new PrivateFieldsProducer();
    const wrapped = withMessageIds(producer, { id: () => 'fixed' });
    await wrapped.connect();
    const tx = await wrapped.transaction();
    await tx.send({ topic: 't', messages: [{ value: 'a' }] });
    await tx.sendBatch({ topicMessages: [{ topic: 't', messages: [{ value: 'b' }] }] });
    expect(tx.isActive()).toBe(true);
    await tx.commit();
    expect(producer.isActive()).toBe(false);
    expect(producer.sent.map((s) => [s.kind, s.transactional, s.messages.map((m) => String(m.headers?.[ID]))])).toEqual([
      ['send', true, ['fixed']],
      ['sendBatch', true, ['fixed']],
    ]);
  });

  it("stamps what is sent through a kafkajs transaction object, and forwards the rest of it", async () => {
    const { producer, sent, commits } = closureProducer();
    const wrapped = withMessageIds(producer, { id: () => 'fixed' });
    expect(wrapped.events).toBe(producer.events);
    const tx = await wrapped.transaction();
    await tx.send({ topic: 't', messages: [{ value: 'a' }] });
    await tx.sendBatch({ topicMessages: [{ topic: 't', messages: [{ value: 'b' }] }, { topic: 'u', messages: [{ value: 'c' }] }] });
    await tx.commit();
    expect(commits()).toBe(1);
    expect(tx.isActive()).toBe(true);
    expect(sent).toEqual([
      { via: 'tx.send', record: { topic: 't', messages: [{ value: 'a', headers: { [ID]: 'fixed' } }] } },
      {
        via: 'tx.sendBatch',
        record: {
          topicMessages: [
            { topic: 't', messages: [{ value: 'b', headers: { [ID]: 'fixed' } }] },
            { topic: 'u', messages: [{ value: 'c', headers: { [ID]: 'fixed' } }] },
          ],
        },
      },
    ]);
  });

  it("never mutates the caller's records or messages, even when the producer rewrites headers in place", async () => {
    const sent: ProducerRecord[] = [];
    const producer = {
      // Normalises header values to bytes in place, as a client library may.
      send: async (record: ProducerRecord) => {
        for (const m of record.messages) for (const [k, v] of Object.entries(m.headers ?? {})) if (typeof v === 'string') m.headers![k] = Buffer.from(v);
        sent.push(record);
        return [];
      },
    };
    const messages = [{ value: 'a' }, { value: 'b', headers: { [ID]: 'keep', trace: ['x', 'y'] } }];
    const record = { topic: 't', messages };
    const before = structuredClone(record);
    await withMessageIds(producer, { id: () => 'fixed' }).send(record);
    expect(record).toEqual(before);
    expect(record.messages).toBe(messages);
    expect(sent[0]!.messages.map((m) => m.headers?.[ID])).toEqual([Buffer.from('fixed'), Buffer.from('keep')]);
  });
});

describe("re-sending stamped messages with Confluent's producer (it rewrites what it is given)", () => {
  it('through withMessageIds each send gets fresh copies, so a re-send carries the same IDs; the raw producer throws on the second send', async () => {
    const producer = new PrivateFieldsProducer();
    await producer.connect();
    const messages = stampMessages([{ value: 'a' }, { value: 'b', headers: { trace: ['x', 'y'] } }], { id: () => 'fixed' });
    const before = structuredClone(messages);
    const wrapped = withMessageIds(producer);
    await wrapped.send({ topic: 't', messages });
    await wrapped.send({ topic: 't', messages }); // a retry of the whole send
    expect(messages).toEqual(before);
    expect(producer.sent.map((s) => s.messages.map((m) => m.headers))).toEqual([
      [{ [ID]: 'fixed' }, { [ID]: 'fixed', trace: ['x', 'y'] }],
      [{ [ID]: 'fixed' }, { [ID]: 'fixed', trace: ['x', 'y'] }],
    ]);

    await producer.send({ topic: 't', messages }); // raw: rewrites `messages` in place
    expect(messages[0]!.headers).toEqual([{ [ID]: 'fixed' }]);
    await expect(producer.send({ topic: 't', messages })).rejects.toThrow('Header value must be a string or buffer');
  });
});

describe('stampMessages', () => {
  it('returns copies with their own headers, stamped where the ID is missing, and leaves frozen input as it was', () => {
    const trace = ['x'];
    const headers = { [ID]: 'keep', trace };
    const input: StampableMessage[] = [{ value: 'a' }, { value: 'b', headers }];
    for (const o of [trace, headers, ...input]) Object.freeze(o);
    const out = stampMessages(input, { id: () => 'fixed' });
    expect(idsOf(out)).toEqual(['fixed', 'keep']);
    out.forEach((message, i) => {
      expect(message).not.toBe(input[i]);
      expect(message.headers).not.toBe(input[i]!.headers);
    });
    expect(out[1]!.headers!['trace']).not.toBe(input[1]!.headers!.trace);
    expect(out[1]!.headers!['trace']).toEqual(['x']);
    expect(input[0]).toEqual({ value: 'a' });
  });
});
