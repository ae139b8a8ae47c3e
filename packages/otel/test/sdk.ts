// An OpenTelemetry SDK for the tests: spans into an in-memory exporter, metrics read on demand.
import { context, propagation, type Attributes } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { DataPointType, MeterProvider, MetricReader, type DataPoint, type Histogram, type MetricData } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';

class TestReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

/** Registers the context manager and the W3C propagator globally (what an SDK's start does); returns the undo. */
export function registerContext(): () => void {
  const manager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(manager);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  return () => {
    context.disable();
    propagation.disable();
  };
}

export interface Sdk {
  readonly tracerProvider: BasicTracerProvider;
  readonly meterProvider: MeterProvider;
  readonly exporter: InMemorySpanExporter;
  spans(): ReadableSpan[];
  /** The points of metric `name` at the last collection. */
  metric(name: string): Promise<MetricData | undefined>;
  /** Sum (counters) or count (histograms) of the points of `name` whose attributes include `match`. */
  total(name: string, match?: Attributes): Promise<number>;
  shutdown(): Promise<void>;
}

export function sdk(): Sdk {
  const exporter = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const reader = new TestReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  const metric = async (name: string) => {
    const { resourceMetrics } = await reader.collect();
    return resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === name);
  };
  return {
    tracerProvider,
    meterProvider,
    exporter,
    spans: () => exporter.getFinishedSpans(),
    metric,
    async total(name, match = {}) {
      const data = await metric(name);
      if (data === undefined) return 0;
      let total = 0;
      for (const point of data.dataPoints as DataPoint<unknown>[]) {
        if (!Object.entries(match).every(([k, v]) => point.attributes[k] === v)) continue;
        total += data.dataPointType === DataPointType.HISTOGRAM ? (point.value as Histogram).count : (point.value as number);
      }
      return total;
    },
    async shutdown() {
      await Promise.all([tracerProvider.shutdown(), meterProvider.shutdown()]);
    },
  };
}
