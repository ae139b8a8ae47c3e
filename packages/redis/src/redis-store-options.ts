import { InvalidOptionsError } from '@onceonly/core';
import type { Cluster, Redis } from 'ioredis';
import { z } from 'zod';
import { prefixProblem } from './keys.js';

/** An ioredis client: standalone (`Redis`) or `Cluster` (either reply mapping of ioredis 6 fits). */
export type RedisStoreClient = Redis | Cluster;

const isClient = (value: unknown): boolean =>
  typeof value === 'object' &&
  value !== null &&
  typeof (value as { defineCommand?: unknown }).defineCommand === 'function' &&
  typeof (value as { pipeline?: unknown }).pipeline === 'function';

export const redisStoreOptionsSchema = z.strictObject({
  /**
   * An ioredis client you created (and own): `new Redis(...)` or `new Cluster(...)`. The store never
   * quits it. See {@link RedisStore} for the client options that make an outage fail fast.
   */
  client: z.custom<RedisStoreClient>(isClient, 'must be an ioredis Redis or Cluster client'),
  /**
   * First part of every key: `<prefix>:{<scope>}:<id>`. 1–64 printable ASCII characters without
   * `{`, `}` or glob characters `*?[]\`.
   * @defaultValue 'onceonly'
   */
  prefix: z
    .string()
    .default('onceonly')
    .superRefine((prefix, context) => {
      const problem = prefixProblem(prefix);
      if (problem !== undefined) context.addIssue({ code: 'custom', message: problem });
    }),
});

/** Options of {@link RedisStore}. */
export type RedisStoreOptions = z.input<typeof redisStoreOptionsSchema>;
export type ResolvedRedisStoreOptions = z.output<typeof redisStoreOptionsSchema>;

/** Validates the options, failing with an `InvalidOptionsError` that names the option. */
export function parseRedisStoreOptions(options: unknown): ResolvedRedisStoreOptions {
  const parsed = redisStoreOptionsSchema.safeParse(options);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const name =
    issue.code === 'unrecognized_keys' ? issue.keys.join('", "') : issue.path.map(String).join('.') || 'options';
  const message = issue.code === 'unrecognized_keys' ? 'is not a RedisStore option' : issue.message;
  throw new InvalidOptionsError(`RedisStore option "${name}" ${message}`, { cause: parsed.error });
}
