import { DedupProcessor, MemoryStore, uuidv7 } from '@onceonly/core';
import { KafkaDedup, stampMessages, type BatchPayloadLike } from '@onceonly/kafka';
import type { KafkaMessage } from 'kafkajs';
import { compare, rate, type Row } from './table.js';

const BATCH = 500;
const WINDOW = 86_400_000;

/** Kafka messages as a consumer receives them: stamped headers as Buffers, a ~200-byte value, offsets. */
function consumedMessages(n: number): KafkaMessage[] {
  const body = 'x'.repeat(150);
  const stamped = stampMessages(Array.from({ length: n }, (_, i) => ({ value: `{"n":${i},"b":"${body}"}` })));
  return stamped.map((message, i) => ({
    key: null,
    value: Buffer.from(message.value),
    headers: Object.fromEntries(Object.entries(message.headers).map(([name, value]) => [name, Buffer.from(String(value))])),
    offset: String(i),
    timestamp: '0',
    attributes: 0,
  }));
}

/**
 * What the Kafka adapter adds to the processor's own work (target: ≤ 10 %), with no broker: the same
 * messages through `KafkaDedup.eachBatch` (ID read from the header, handler context, offsets resolved
 * as the done prefix grows, heartbeat timer) against `processor.processBatch` given the IDs, payloads
 * and offset high-water mark directly, both on the memory store, batches of 500, no-op handler.
 */
export async function kafkaGlue(n: number, rounds: number, progress: (s: string) => void): Promise<Row[]> {
  progress('kafka glue: eachBatch on in-memory batches vs processBatch');
  const measured = await compare(
    rounds,
    async () => {
      const messages = consumedMessages(n);
      const dedup = new KafkaDedup({ groupId: 'bench', store: new MemoryStore({ capacity: n }), processor: { windowMs: WINDOW } });
      const eachBatch = dedup.eachBatch(() => undefined);
      let resolved = '';
      const value = await rate(n, async () => {
        for (let i = 0; i < n; i += BATCH) {
          const payload: BatchPayloadLike = {
            batch: { topic: 'bench', partition: 0, messages: messages.slice(i, i + BATCH) },
            resolveOffset: (offset) => (resolved = offset),
            heartbeat: async () => undefined,
            isRunning: () => true,
            isStale: () => false,
          };
          await eachBatch(payload);
        }
      });
      if (resolved !== String(n - 1)) throw new Error(`bench: resolved ${resolved}, expected ${n - 1}`);
      await dedup.processor.close();
      return value;
    },
    async () => {
      const body = 'x'.repeat(150);
      const messages = Array.from({ length: n }, (_, i) => ({ id: uuidv7(), payload: Buffer.from(`{"n":${i},"b":"${body}"}`) }));
      const processor = new DedupProcessor({ scope: 'bench', store: new MemoryStore({ capacity: n }), windowMs: WINDOW });
      const value = await rate(n, async () => {
        for (let i = 0; i < n; i += BATCH) {
          // The same offset high-water mark the adapter keeps (a processor feature: its cost is the processor's).
          const positions = Array.from({ length: Math.min(BATCH, n - i) }, (_, k) => i + k);
          const mark = { ref: { scope: 'bench', name: 'bench:0' }, positions, skip: true };
          await processor.processBatch(messages.slice(i, i + BATCH), () => undefined, { mark });
        }
      });
      await processor.close();
      return value;
    },
  );
  return [{ group: 'kafka', name: `eachBatch(${BATCH}) without a broker, memory store, no-op`, ...measured, baselineName: `processor.processBatch(${BATCH}), same messages`, unit: 'ops/s',
    target: { text: '≥ 0.91 of baseline (glue ≤ 10 %)', met: (r) => r.value / r.baseline >= 1 / 1.1 } }];
}
