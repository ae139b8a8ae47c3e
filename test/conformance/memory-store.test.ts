import { MemoryStore } from '@onceonly/core';
import { describeStoreConformance } from './store-conformance.js';

let now = Date.now();

describeStoreConformance('memory', () => ({
  store: async () => new MemoryStore({ clock: () => now }),
  peer: async (store) => store,
  advance: async (ms) => {
    now += ms;
  },
  leaseMs: 1_000,
  windowMs: 60_000,
}));
