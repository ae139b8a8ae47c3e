// instrumentStore keeps every capability of the store it times; instrumentMonitor exports the
// duplicate-rate monitor's figures and alerts.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DedupProcessor, DuplicateRateMonitor, isTransactional, MemoryStore, reportsResets, supportsMarks } from '@onceonly/core';
import { instrumentMonitor, instrumentStore, METRIC } from '@onceonly/otel';
import { sdk, type Sdk } from './sdk.js';

let telemetry: Sdk;
beforeEach(() => {
  telemetry = sdk();
});
afterEach(async () => {
  await telemetry.shutdown();
});

describe('instrumentStore', () => {
  it('keeps the store\'s class, optional capabilities and members; methods are bound once', async () => {
    const inner = Object.assign(new MemoryStore(), { maxDurationMs: 2 ** 40, isAvailable: () => false });
    const store = instrumentStore(inner, { meterProvider: telemetry.meterProvider });
    expect(store).not.toBe(inner);
    expect(store).toBeInstanceOf(MemoryStore);
    expect(supportsMarks(store)).toBe(supportsMarks(inner));
    expect(isTransactional(store)).toBe(false);
    expect(reportsResets(store)).toBe(reportsResets(inner));
    expect(store.maxDurationMs).toBe(2 ** 40);
    expect(store.isAvailable()).toBe(false);
    expect(store.claim).toBe(store.claim);
    expect(store.stats).toBe(store.stats);
    expect(store.stats().size).toBe(0);

    const mark = { scope: 's', name: 'orders:0' };
    const { claims } = await store.claimManyMarked(mark, [{ scope: 's', id: 'm1', leaseMs: 1_000, windowMs: 60_000, position: 0 }], true);
    expect(claims[0]).toMatchObject({ status: 'acquired' });
    await store.completeManyMarked(mark, [{ scope: 's', id: 'm1', token: 1, windowMs: 60_000 }], { from: 0, to: 0 });
    expect(await store.getMark(mark)).toEqual({ low: 0, high: 0 });
    expect(inner.stats().size).toBe(1);
    for (const operation of ['claimManyMarked', 'completeManyMarked', 'getMark']) {
      expect(await telemetry.total(METRIC.storeDuration, { 'onceonly.store': 'MemoryStore', 'onceonly.store.operation': operation })).toBe(1);
    }
  });

  it('a transactional store stays transactional (its completeWithin passes through, untimed)', async () => {
    const inner = Object.assign(new MemoryStore(), {
      completeWithin: async () => ({ transition: 'ok' as const, value: 1 }),
      withTransaction: async <R>(work: (tx: string) => Promise<R>) => work('tx'),
    });
    const store = instrumentStore(inner, { meterProvider: telemetry.meterProvider, name: 'pg' });
    expect(isTransactional(store)).toBe(true);
    expect(await store.withTransaction(async (tx) => tx)).toBe('tx');
    await store.claim({ scope: 's', id: 'x', leaseMs: 1_000, windowMs: 60_000 });
    expect(await telemetry.total(METRIC.storeDuration, { 'onceonly.store': 'pg', 'onceonly.store.operation': 'claim' })).toBe(1);
  });
});

describe('instrumentMonitor', () => {
  it('exports the rate per scope, the alerts in force and a counter of alerts raised', async () => {
    const monitor = new DuplicateRateMonitor({ minMessages: 4, threshold: 0.25, expectDuplicates: { afterMessages: 3 } });
    const stop = instrumentMonitor(monitor, { meterProvider: telemetry.meterProvider });
    const quiet = new DedupProcessor({ scope: 'quiet' });
    const noisy = new DedupProcessor({ scope: 'noisy' });
    monitor.watch(quiet);
    monitor.watch(noisy);
    for (const id of ['a', 'b', 'c']) await quiet.process({ id }, () => 1);
    for (const id of ['a', 'a', 'a', 'b']) await noisy.process({ id }, () => 1);

    const rate = await telemetry.metric(METRIC.duplicateRate);
    const byScope = Object.fromEntries(rate!.dataPoints.map((p) => [p.attributes['onceonly.scope'], p.value]));
    expect(byScope).toEqual({ quiet: 0, noisy: 0.5 });
    expect(await telemetry.total(METRIC.duplicateAlertActive, { 'onceonly.scope': 'noisy', 'onceonly.alert': 'high' })).toBe(1);
    expect(await telemetry.total(METRIC.duplicateAlertActive, { 'onceonly.scope': 'quiet', 'onceonly.alert': 'high' })).toBe(0);
    expect(await telemetry.total(METRIC.duplicateAlertActive, { 'onceonly.scope': 'quiet', 'onceonly.alert': 'zero' })).toBe(1);
    expect(await telemetry.total(METRIC.duplicateAlerts, { 'onceonly.scope': 'noisy', 'onceonly.alert': 'high' })).toBe(1);
    expect(await telemetry.total(METRIC.duplicateAlerts, { 'onceonly.scope': 'quiet', 'onceonly.alert': 'zero' })).toBe(1);
    stop();
  });
});
