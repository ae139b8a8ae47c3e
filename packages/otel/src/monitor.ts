import { ValueType, type MeterProvider } from '@opentelemetry/api';
import type { DuplicateRateMonitor } from '@onceonly/core';
import { ATTR, METRIC } from './names.js';
import { meterOf } from './providers.js';

/** Options of {@link instrumentMonitor}. */
export interface InstrumentMonitorOptions {
  /** @defaultValue the global meter provider, as it is now */
  readonly meterProvider?: MeterProvider;
}

/**
 * Exports a {@link DuplicateRateMonitor}'s figures as metrics: `onceonly.duplicate.rate` (a gauge per
 * scope: duplicates ÷ deliveries over the monitor's window), `onceonly.duplicate.alert.active` (1
 * while an alert is in force, by scope and `onceonly.alert`: `high` or `zero`) and
 * `onceonly.duplicate.alerts` (a counter of alerts raised). Returns a function that stops.
 *
 * @example
 * const monitor = new DuplicateRateMonitor({ expectDuplicates: { afterMessages: 10_000 } });
 * monitor.watch(processor);
 * instrumentMonitor(monitor);
 */
export function instrumentMonitor(monitor: DuplicateRateMonitor, options: InstrumentMonitorOptions = {}): () => void {
  const meter = meterOf(options.meterProvider);
  if (meter === undefined) return () => undefined;
  const rate = meter.createObservableGauge(METRIC.duplicateRate, { description: 'Duplicates ÷ deliveries over the monitor window', unit: '1' });
  const active = meter.createObservableGauge(METRIC.duplicateAlertActive, {
    description: '1 while a duplicate-rate alert is in force',
    unit: '1',
    valueType: ValueType.INT,
  });
  const alerts = meter.createCounter(METRIC.duplicateAlerts, { description: 'Duplicate-rate alerts raised', unit: '{alert}', valueType: ValueType.INT });
  const callback = (result: import('@opentelemetry/api').BatchObservableResult) => {
    for (const scope of monitor.snapshot()) {
      result.observe(rate, scope.rate, { [ATTR.scope]: scope.scope });
      result.observe(active, scope.high ? 1 : 0, { [ATTR.scope]: scope.scope, [ATTR.alert]: 'high' });
      if (monitor.zeroAfter !== undefined) result.observe(active, scope.zero ? 1 : 0, { [ATTR.scope]: scope.scope, [ATTR.alert]: 'zero' });
    }
  };
  meter.addBatchObservableCallback(callback, [rate, active]);
  const offHigh = monitor.on('high', ({ scope }) => alerts.add(1, { [ATTR.scope]: scope, [ATTR.alert]: 'high' }));
  const offZero = monitor.on('zero', ({ scope }) => alerts.add(1, { [ATTR.scope]: scope, [ATTR.alert]: 'zero' }));
  return () => {
    meter.removeBatchObservableCallback(callback, [rate, active]);
    offHigh();
    offZero();
  };
}
