// The Prometheus example (examples/prometheus-metrics) on a real Redis and BullMQ: after real jobs, a
// real HTTP GET of its /metrics finds onceonly's series with the expected values.
import { addBulkStamped, stamp } from '@onceonly/bullmq';
import { Queue } from 'bullmq';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { startService, type Service } from '../../examples/prometheus-metrics/src/service.js';
import { randomName } from '../support/kafka/broker.js';

let service: Service | undefined;
let queue: Queue | undefined;
afterEach(async () => {
  await service?.close();
  await queue?.obliterate({ force: true }).catch(() => undefined);
  await queue?.close();
  service = queue = undefined;
});

/** The value of the sample `name{labels…}` whose labels include every one of `labels`. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const match = /^[^{ ]+(?:\{(.*)\})? (\S+)/.exec(line);
    if (!match) continue;
    const found = Object.fromEntries([...(match[1] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(match[2]);
  }
  return undefined;
}

describe('otel: the Prometheus example', () => {
  it('serves the outcome, duration, store, in-flight and duplicate-rate series at /metrics', async () => {
    const name = randomName('prom-q');
    service = await startService({ redisUrl: inject('redisUrl'), queue: name, prefix: `oo-${name}` });
    expect(service.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);

    queue = new Queue(name, { connection: { url: inject('redisUrl') } });
    const jobs = Array.from({ length: 40 }, (_, i) => ({ name: 'welcome', data: stamp({ to: `user${i}@example.com` }) }));
    await addBulkStamped(queue, jobs);
    await addBulkStamped(queue, jobs.filter((_, i) => i % 5 === 0)); // 8 retried adds
    const deadline = Date.now() + 30_000;
    while ((await queue.getJobCounts('completed')).completed! < 48) {
      if (Date.now() > deadline) throw new Error('the jobs did not complete');
      await new Promise((r) => setTimeout(r, 50));
    }

    const response = await fetch(service.metricsUrl);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await response.text();
    if (process.env.PRINT_METRICS) console.log(text);
    const scope = { onceonly_scope: name };
    expect(sample(text, 'onceonly_outcomes_total', { ...scope, onceonly_outcome: 'processed', onceonly_replayed: 'false' })).toBe(40);
    expect(sample(text, 'onceonly_outcomes_total', { ...scope, onceonly_outcome: 'duplicate', onceonly_replayed: 'true' })).toBe(8);
    expect(sample(text, 'messaging_process_duration_count', { ...scope, messaging_system: 'bullmq', messaging_destination_name: name, onceonly_outcome: 'processed' })).toBe(40);
    expect(sample(text, 'messaging_process_duration_bucket', { ...scope, onceonly_outcome: 'duplicate', le: '+Inf' })).toBe(8);
    expect(sample(text, 'onceonly_handler_duration_count', scope)).toBe(40);
    expect(sample(text, 'onceonly_store_operation_duration_count', { onceonly_store: 'RedisStore', onceonly_store_operation: 'claim' })).toBeGreaterThan(0);
    expect(sample(text, 'onceonly_messages_in_flight', scope)).toBe(0);
    expect(sample(text, 'onceonly_duplicate_rate', scope)).toBeCloseTo(8 / 48, 5);
    expect(sample(text, 'onceonly_duplicate_alert_active', { ...scope, onceonly_alert: 'high' })).toBe(1);
    expect(sample(text, 'onceonly_duplicate_alerts_total', { ...scope, onceonly_alert: 'high' })).toBe(1);
    expect(text).toContain('# TYPE onceonly_outcomes_total counter');
    expect(text).toContain('# TYPE messaging_process_duration histogram');
  });
});
