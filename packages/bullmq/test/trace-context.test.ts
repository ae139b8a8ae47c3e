// What the BullMQ adapter hands an instrumentation, and how addStamped carries the producer's trace
// context in the job's options (never in its data, which the worker fingerprints). No OpenTelemetry here.
import { addBulkStamped, addStamped, onceonly, stamp, type QueueLike } from '@onceonly/bullmq';
import { MemoryStore, type Instrumentation, type MessageInfo } from '@onceonly/core';
import type { Job, JobsOptions } from 'bullmq';
import { describe, expect, it } from 'vitest';

const job = (data: unknown, opts: JobsOptions = {}) => ({ id: '1', name: 'task', queueName: 'emails', data, opts, attemptsMade: 0 }) as unknown as Job;

function fakeQueue() {
  const added: { data: unknown; opts?: JobsOptions }[] = [];
  const queue: QueueLike = {
    add: async (_name, data, opts) => (added.push({ data, opts }), {} as Job),
    addBulk: async (jobs) => (jobs.forEach((j) => added.push({ data: j.data, opts: j.opts })), []),
  };
  return { queue, added };
}

describe('BullMQ adapter: trace context', () => {
  it('addStamped / addBulkStamped put the injected carrier in opts.telemetry.metadata; metadata given is kept', async () => {
    const { queue, added } = fakeQueue();
    const inject = (carrier: Record<string, unknown>) => void (carrier['traceparent'] = '00-abc');
    const data = stamp({ to: 'ada' });
    await addStamped(queue, 'welcome', data, { attempts: 3 }, { inject });
    await addStamped(queue, 'welcome', data, { telemetry: { metadata: '{"traceparent":"mine"}' } }, { inject });
    await addStamped(queue, 'welcome', data, undefined, { inject: () => undefined }); // nothing injected: no telemetry
    await addBulkStamped(queue, [{ name: 'welcome', data }], { inject });
    expect(added.map((a) => a.opts)).toEqual([
      { attempts: 3, telemetry: { metadata: '{"traceparent":"00-abc"}' } },
      { telemetry: { metadata: '{"traceparent":"mine"}' } },
      undefined,
      { telemetry: { metadata: '{"traceparent":"00-abc"}' } },
    ]);
    expect(added.every((a) => a.data === data)).toBe(true); // the data (fingerprinted) is untouched
  });

  it('gives an instrumentation the parsed metadata as the carrier and the queue as the destination', async () => {
    const seen: MessageInfo[] = [];
    const instrumentation: Instrumentation = { start: (info) => void seen.push(info) };
    const wrapped = onceonly(async () => 'ok', { store: new MemoryStore(), instrumentation });
    const data = stamp({ to: 'ada' });
    await wrapped(job(data, { telemetry: { metadata: '{"traceparent":"00-abc"}' } }));
    await wrapped(job(data, { telemetry: { metadata: 'not json' } }));
    expect(seen[0]).toEqual({ scope: 'emails', id: data.onceonlyId, carrier: { traceparent: '00-abc' }, attributes: { 'messaging.system': 'bullmq', 'messaging.destination.name': 'emails' } });
    expect(seen[1]!.carrier).toBeUndefined();
    await wrapped.close();
  });
});
