import type { DedupStore } from '@onceonly/core';
import { PostgresStore } from '@onceonly/postgres';
import type pg from 'pg';
import { sleep, usePostgres } from '../postgres/postgres-test-context.js';
import { describeStoreConformance } from './store-conformance.js';

const postgres = usePostgres();
const schemas = new WeakMap<DedupStore, string>();
let peers: pg.Pool | undefined;

describeStoreConformance('postgres', () => ({
  // Its own schema per test: no test sees another's rows.
  store: async () => {
    const store = await postgres.store();
    schemas.set(store, store.tables.schema);
    return store;
  },
  // Peers share a pool large enough for 50 connections: 50 claims really race on the server.
  peer: async (store) => new PostgresStore({ pool: (peers ??= postgres.pool({ max: 50 })), schema: schemas.get(store)! }),
  // Leases are judged by the database clock, so time has to really pass.
  advance: sleep,
  leaseMs: 300,
  windowMs: 60_000,
}));
