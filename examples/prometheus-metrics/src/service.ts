// An effectively-once BullMQ worker that serves its onceonly metrics to Prometheus at /metrics.
//
// The library records OpenTelemetry metrics only (`@onceonly/otel`); OpenTelemetry's Prometheus
// exporter turns them into the Prometheus text format. The exporter is mounted on this service's
// own HTTP server (loopback, a free port unless one is given) rather than starting a server of its own.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createWorker } from '@onceonly/bullmq';
import { DedupProcessor, DuplicateRateMonitor } from '@onceonly/core';
import { instrumentMonitor, instrumentProcessor, instrumentStore, otelInstrumentation } from '@onceonly/otel';
import { RedisStore } from '@onceonly/redis';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import type { Worker } from 'bullmq';
import { Redis } from 'ioredis';

export interface ServiceOptions {
  readonly redisUrl: string;
  readonly queue: string;
  /** Store key prefix. @defaultValue 'onceonly-example' */
  readonly prefix?: string;
  /** Where /metrics listens. @defaultValue 127.0.0.1 */
  readonly host?: string;
  /** @defaultValue 0: a free port */
  readonly port?: number;
  readonly concurrency?: number;
  /** The job's effect. @defaultValue nothing */
  readonly handle?: (data: unknown, id: string) => Promise<unknown> | unknown;
}

export interface Service {
  /** `http://host:port/metrics` */
  readonly metricsUrl: string;
  readonly worker: Worker;
  readonly processor: DedupProcessor;
  readonly monitor: DuplicateRateMonitor;
  close(): Promise<void>;
}

export async function startService(options: ServiceOptions): Promise<Service> {
  // Metrics: a meter provider whose only reader is the Prometheus exporter (no server of its own).
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const meterProvider = new MeterProvider({ readers: [exporter] });

  // The store, timed; the processor, traced and measured; its events counted; its duplicate rate watched.
  const client = new Redis(options.redisUrl, { maxRetriesPerRequest: 1 });
  const store = instrumentStore(new RedisStore({ client, prefix: options.prefix ?? 'onceonly-example' }), { meterProvider });
  const processor = new DedupProcessor({
    scope: options.queue,
    store,
    recordResults: true,
    instrumentation: otelInstrumentation({ meterProvider }),
  });
  const stopEvents = instrumentProcessor(processor, { meterProvider });
  const monitor = new DuplicateRateMonitor({ windowMs: 60_000, minMessages: 20 });
  monitor.watch(processor);
  const stopMonitor = instrumentMonitor(monitor, { meterProvider });

  const handle = options.handle ?? (() => undefined);
  const worker = createWorker(options.queue, async (job, { id }) => handle(job.data, id), {
    connection: { url: options.redisUrl, maxRetriesPerRequest: null },
    concurrency: options.concurrency ?? 10,
    onceonly: { processor },
  });

  const server: Server = createServer((request, response) => {
    if (request.method === 'GET' && request.url?.split('?')[0] === '/metrics') return exporter.getMetricsRequestHandler(request, response);
    response.statusCode = request.url === '/healthz' ? 200 : 404;
    response.end(response.statusCode === 200 ? 'ok\n' : 'not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;

  return {
    metricsUrl: `http://${host}:${port}/metrics`,
    worker,
    processor,
    monitor,
    async close() {
      await worker.close();
      await processor.close();
      stopEvents();
      stopMonitor();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await meterProvider.shutdown();
      client.disconnect();
    },
  };
}
