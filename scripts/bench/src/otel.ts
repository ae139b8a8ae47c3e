/**
 * The cost of `@onceonly/otel` on the processor's hot path: `process()` one message at a time on the
 * memory store (the cheapest path, so the overhead shows most), each message carrying the messaging
 * attributes an adapter builds when an instrumentation is set, beside the same loop without one.
 *
 * - no provider registered: what a library user pays for leaving the instrumentation on while nothing
 *   records (target: at most 5 %);
 * - an SDK registered (traces with a batch span processor and an exporter that drops, metrics
 *   aggregated, the AsyncLocalStorage context manager): what recording costs.
 */
import { context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, BatchSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { DedupProcessor, MemoryStore, uuidv7, type Instrumentation } from '@onceonly/core';
import { instrumentProcessor, instrumentStore, otelInstrumentation } from '@onceonly/otel';
import { median, rate, type Row } from './table.js';

class DroppingExporter implements SpanExporter {
  export(_spans: ReadableSpan[], done: (result: { code: number }) => void): void {
    done({ code: 0 });
  }
  async shutdown(): Promise<void> {}
}

class IdleReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

interface Setup {
  readonly instrumentation?: Instrumentation;
  readonly wrap?: (processor: DedupProcessor) => void;
  readonly store?: (store: MemoryStore) => MemoryStore;
}

/** `n` messages through `process()`, one at a time; attributes as the Kafka adapter builds them when instrumented. */
function loop(n: number, setup: () => Setup): () => Promise<number> {
  return async () => {
    const ids = Array.from({ length: n }, () => uuidv7());
    const { instrumentation, wrap, store = (s: MemoryStore) => s } = setup();
    const processor = new DedupProcessor({ scope: 'bench', store: store(new MemoryStore({ capacity: n })), fingerprint: false, ...(instrumentation ? { instrumentation } : {}) });
    wrap?.(processor);
    const handler = () => 1;
    // Every 1 000 messages the event loop gets a turn, as a consumer's I/O gives it: timers run (the
    // batch span processor exports), on both sides alike.
    const value = await rate(n, async () => {
      if (instrumentation === undefined) {
        for (let i = 0; i < n; i++) {
          if (i % 1_000 === 999) await new Promise((resolve) => setImmediate(resolve));
          await processor.process({ id: ids[i] }, handler);
        }
      } else {
        for (let i = 0; i < n; i++) {
          if (i % 1_000 === 999) await new Promise((resolve) => setImmediate(resolve));
          const attributes = {
            'messaging.system': 'kafka',
            'messaging.destination.name': 'orders',
            'messaging.consumer.group.name': 'billing',
            'messaging.destination.partition.id': '0',
            'messaging.kafka.offset': i,
          };
          await processor.process({ id: ids[i], attributes }, handler);
        }
      }
    });
    await processor.close();
    return value;
  };
}

/**
 * Runs subject and baseline back to back `rounds` times (alternating which goes first, after one
 * warm-up pair), and answers the baseline's median rate and the median of the paired ratios: on a
 * machine shared with other work the pairs drift together, so their ratios are steadier than two
 * independent medians. The row's result is the baseline's median × that ratio.
 */
async function paired(rounds: number, subject: () => Promise<number>, baseline: () => Promise<number>): Promise<{ value: number; baseline: number }> {
  await baseline();
  await subject();
  const rates: number[] = [];
  const ratios: number[] = [];
  for (let i = 0; i < rounds; i++) {
    let a: number;
    let b: number;
    if (i % 2 === 0) {
      b = await baseline();
      a = await subject();
    } else {
      a = await subject();
      b = await baseline();
    }
    rates.push(b);
    ratios.push(a / b);
  }
  const base = median(rates);
  return { value: base * median(ratios), baseline: base };
}

export async function otelOverhead(n: number, rounds: number, progress: (s: string) => void): Promise<{ rows: Row[]; notes: string[] }> {
  const rows: Row[] = [];
  const baseline = loop(n, () => ({}));

  progress('otel: processor with instrumentation, no provider registered');
  const none = await paired(
    rounds,
    loop(n, () => {
      const instrumentation = otelInstrumentation();
      return { instrumentation, wrap: (p) => void instrumentProcessor(p), store: (s) => instrumentStore(s) };
    }),
    baseline,
  );
  rows.push({
    group: 'otel',
    name: 'process(), instrumented, no provider registered',
    ...none,
    baselineName: 'process(), no instrumentation',
    unit: 'ops/s',
    target: { text: '≥ 0.95 of baseline', met: (r) => r.value / r.baseline >= 0.95 },
  });

  progress('otel: processor with instrumentation and an SDK provider');
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(new DroppingExporter(), { maxQueueSize: 65_536, maxExportBatchSize: 4_096 })] });
  const meterProvider = new MeterProvider({ readers: [new IdleReader()] });
  try {
    const sdk = await paired(
      rounds,
      loop(n, () => {
        const instrumentation = otelInstrumentation({ tracerProvider, meterProvider });
        return {
          instrumentation,
          wrap: (p) => void instrumentProcessor(p, { meterProvider }),
          store: (s) => instrumentStore(s, { meterProvider }),
        };
      }),
      baseline,
    );
    rows.push({ group: 'otel', name: 'process(), instrumented, SDK registered (spans + metrics)', ...sdk, baselineName: 'process(), no instrumentation', unit: 'ops/s' });
    const perMessage = (1 / sdk.value - 1 / sdk.baseline) * 1e6;
    const noneMore = (1 / none.value - 1 / none.baseline) * 1e6;
    return {
      rows,
      notes: [
        `otel (results: the baseline's median × the median ratio of ${rounds} back-to-back pairs): no provider ${(noneMore * 1000).toFixed(0)} ns more per message; ` +
          `SDK registered ${perMessage.toFixed(1)} µs more (a span with its attributes, 1 outcome count, 2 histogram records, 2 store timings)`,
      ],
    };
  } finally {
    await Promise.all([tracerProvider.shutdown(), meterProvider.shutdown()]);
    context.disable();
  }
}
