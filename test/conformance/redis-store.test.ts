import { Redis } from 'ioredis';
import { inject } from 'vitest';
import { uuidv7, type DedupStore } from '@onceonly/core';
import { RedisStore } from '@onceonly/redis';
import { describeStoreConformance } from './store-conformance.js';

const url = inject('redisUrl');
const clients: Redis[] = [];
const connect = () => {
  const client = new Redis(url, { maxRetriesPerRequest: 1 });
  clients.push(client);
  return client;
};
const prefixes = new WeakMap<DedupStore, string>();

describeStoreConformance('redis', () => ({
  store: async () => {
    const prefix = `conformance-${uuidv7()}`;
    const store = new RedisStore({ client: connect(), prefix });
    prefixes.set(store, prefix);
    return store;
  },
  // A separate connection per peer: 50 clients really race on the server.
  peer: async (store) => new RedisStore({ client: connect(), prefix: prefixes.get(store)! }),
  // Leases are judged by the server's clock, so time has to really pass.
  advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  leaseMs: 300,
  windowMs: 60_000,
  close: async () => {
    await Promise.all(clients.splice(0).map((client) => client.quit()));
  },
}));
