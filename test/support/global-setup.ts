import type { TestProject } from 'vitest/node';
import { resolveRedis } from './redis-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** `redis://host:port` of the Redis the integration tests share (see redis-server.ts). */
    redisUrl: string;
  }
}

/**
 * Provides one Redis to every integration test (`inject('redisUrl')`) and stops it after the run.
 * Tests isolate themselves with random key prefixes; tests that stop or reconfigure Redis start their
 * own with `startRedisServer()`.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const redis = await resolveRedis();
  project.provide('redisUrl', redis.url);
  return async () => {
    await redis.stop();
  };
}
