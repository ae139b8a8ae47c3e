import { randomBytes } from 'node:crypto';
import { Queue, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { WorkerProcess } from './worker-process.js';

/** One queue, one store prefix and one ledger per test, so tests never see each other's keys. */
export class BullmqTestContext {
  readonly name = `q${randomBytes(5).toString('hex')}`;
  readonly prefix = `oo-${this.name}`;
  readonly ledger = `ledger:${this.name}`;
  readonly redis: Redis;
  readonly queue: Queue;
  readonly workers: WorkerProcess[] = [];

  constructor(readonly redisUrl: string) {
    this.redis = new Redis(redisUrl);
    this.queue = new Queue(this.name, { connection: { url: redisUrl } });
  }

  /**
   * Starts a worker process on this queue; `env` overrides its settings (see fixtures/worker.mjs, or
   * the fixture `script` given instead).
   */
  async startWorker(env: Record<string, string | number> = {}, script?: string): Promise<WorkerProcess> {
    const worker = new WorkerProcess({ REDIS_URL: this.redisUrl, QUEUE: this.name, PREFIX: this.prefix, LEDGER: this.ledger, ...env }, script);
    this.workers.push(worker);
    await worker.waitFor((line) => line.kind === 'READY', 20_000);
    return worker;
  }

  /** How many times the handler applied the effect, per message ID. */
  async effects(): Promise<Record<string, number>> {
    const raw = await this.redis.hgetall(this.ledger);
    return Object.fromEntries(Object.entries(raw).map(([id, n]) => [id, Number(n)]));
  }

  async waitForState(job: Job, states: string[], timeoutMs = 30_000): Promise<Job> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const state = await job.getState();
      if (states.includes(state)) return (await this.queue.getJob(job.id!))!;
      if (Date.now() > deadline) throw new Error(`job ${job.id} is "${state}", not ${states.join('/')} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.kill()));
    await this.queue.obliterate({ force: true }).catch(() => {});
    await this.queue.close();
    this.redis.disconnect();
  }
}
