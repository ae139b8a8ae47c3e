import type { TestProject } from 'vitest/node';
import { resolveKafka } from './kafka/broker.js';
import { resolvePostgres } from './postgres-server.js';
import { resolveRedis } from './redis-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** `redis://host:port` of the Redis the integration tests share (see redis-server.ts). */
    redisUrl: string;
    /** `host:port` list of the Kafka broker the integration tests share (see kafka/broker.ts); empty when none. */
    kafkaBrokers: string[];
    /** Why no Kafka broker could be resolved; Kafka tests fail with it. Empty when one runs. */
    kafkaError: string;
    /** `postgres://…` of the PostgreSQL the integration tests share (see postgres-server.ts); empty when none. */
    postgresUrl: string;
    /** Why no PostgreSQL could be resolved; PostgreSQL tests fail with it. Empty when one runs. */
    postgresError: string;
  }
}

/**
 * Provides one Redis (`inject('redisUrl')`), one Kafka broker (`inject('kafkaBrokers')`) and one
 * PostgreSQL (`inject('postgresUrl')`) to every integration test and stops them after the run. Tests isolate themselves with random key prefixes,
 * topic and group names. When no broker can be resolved, the Redis tests still run and every Kafka
 * test fails with the reason (`kafkaError`).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const [redis, kafka, postgres] = await Promise.all([
    resolveRedis(),
    resolveKafka().then(
      (broker) => ({ broker, error: '' }),
      (error: unknown) => ({ broker: undefined, error: (error as Error).message }),
    ),
    resolvePostgres().then(
      (server) => ({ server, error: '' }),
      (error: unknown) => ({ server: undefined, error: (error as Error).message }),
    ),
  ]);
  // Which Node and which services this run uses (CI runs the suite on more than one Node version).
  console.log(
    `integration: node ${process.version}; Redis ${redis.url.replace(/\/\/[^@/]*@/, '//***@')} (${redis.source}); ` +
      `Kafka ${kafka.broker ? `${kafka.broker.brokers.join(',')} (${kafka.broker.source})` : 'unavailable'}; ` +
      `PostgreSQL ${postgres.server ? `${postgres.server.url.replace(/\/\/[^@/]*@/, '//***@')} (${postgres.server.source})` : 'unavailable'}`,
  );
  project.provide('redisUrl', redis.url);
  project.provide('kafkaBrokers', kafka.broker?.brokers ?? []);
  project.provide('kafkaError', kafka.error);
  project.provide('postgresUrl', postgres.server?.url ?? '');
  project.provide('postgresError', postgres.error);
  return async () => {
    await Promise.all([redis.stop(), kafka.broker?.stop(), postgres.server?.stop()]);
  };
}
