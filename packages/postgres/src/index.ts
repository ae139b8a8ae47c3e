/**
 * `@onceonly/postgres`: the PostgreSQL store for onceonly (pg). Shared, durable, one statement per
 * claim or batch, and transactional: a handler's writes and its completion commit together.
 *
 * @example
 * import pg from 'pg';
 * import { PostgresStore } from '@onceonly/postgres';
 *
 * const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, connectionTimeoutMillis: 5_000 });
 * pool.on('error', () => {}); // a dropped idle connection; the next call reports the outage
 * const store = new PostgresStore({ pool });
 * await store.migrate();
 *
 * @packageDocumentation
 */
export { PostgresStore, type PruneOptions } from './postgres-store.js';
export { postgresStoreOptionsSchema, type PostgresStoreOptions, type TransactionRunner } from './postgres-store-options.js';
export { DEFAULT_TABLE_NAMES, migrate, SCHEMA_VERSION, schemaSql } from './schema.js';
export { identifierProblem, MAX_SCHEMA_NAME_LENGTH, MAX_TABLE_NAME_LENGTH, quoteIdentifier, type TableNames } from './sql.js';
export { MAX_ID_BYTES, MAX_SCOPE_BYTES } from './requests.js';
export { TransactionStateError, type TransactionStateCode } from './errors.js';
