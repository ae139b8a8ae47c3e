// A fake kafkajs eachBatch payload for the unit tests: records resolved offsets and heartbeats.
import type { EachBatchPayload, KafkaMessage } from 'kafkajs';

export function batchPayload(messages: KafkaMessage[], opts: { topic?: string; partition?: number; stale?: () => boolean } = {}) {
  const resolved: string[] = [];
  let heartbeats = 0;
  const payload = {
    batch: {
      topic: opts.topic ?? 'orders',
      partition: opts.partition ?? 0,
      messages,
      highWatermark: '0',
      isEmpty: () => false,
      firstOffset: () => messages[0]?.offset ?? null,
      lastOffset: () => messages.at(-1)!.offset,
      offsetLag: () => '0',
      offsetLagLow: () => '0',
    },
    resolveOffset: (offset: string) => void resolved.push(offset),
    heartbeat: async () => void heartbeats++,
    pause: () => () => undefined,
    commitOffsetsIfNecessary: async () => undefined,
    uncommittedOffsets: () => ({ topics: [] }),
    isRunning: () => true,
    isStale: opts.stale ?? (() => false),
  } satisfies EachBatchPayload;
  return { payload, resolved, heartbeats: () => heartbeats };
}
