// Shared helpers of the PostgreSQL store tests: the run's PostgreSQL (`inject('postgresUrl')`, from
// test/support/global-setup.ts; a file run without it starts its own throwaway cluster, see
// test/support/postgres-server.ts), pools that are ended after the file, and a fresh schema per
// store so that tests never see each other's rows, even on a shared server.
import { randomBytes } from 'node:crypto';
import { PostgresStore, type PostgresStoreOptions } from '@onceonly/postgres';
import pg from 'pg';
import { afterAll, beforeAll, inject } from 'vitest';
import { resolvePostgres, type RunningPostgres } from '../support/postgres-server.js';

export interface PostgresTestContext {
  /** The server's URL (set once the file's `beforeAll` ran). */
  readonly url: string;
  /** Where the server came from (e.g. 'postgres' for a local throwaway cluster). */
  readonly source: string;
  /** A new pool on the server, with an 'error' listener; ended after the file. */
  pool(config?: pg.PoolConfig): pg.Pool;
  /** The file's administration pool (creating and dropping schemas, inspecting tables). */
  readonly admin: pg.Pool;
  /** A schema no other test uses, created now, dropped after the file. */
  freshSchema(): Promise<string>;
  /** A store on its own fresh, migrated schema (the file's default pool unless `options.pool`). */
  store(options?: Partial<PostgresStoreOptions>): Promise<PostgresStore>;
}

/** Registers the file's hooks and answers the context (use its members inside tests and hooks only). */
export function usePostgres(): PostgresTestContext {
  let server: RunningPostgres | undefined;
  let url = '';
  let source = '';
  const pools: pg.Pool[] = [];
  const schemas: string[] = [];
  let admin: pg.Pool | undefined;
  let defaultPool: pg.Pool | undefined;

  const pool = (config: pg.PoolConfig = {}): pg.Pool => {
    if (!url) throw new Error('usePostgres(): the server is not ready (use the context in tests and hooks)');
    const created = new pg.Pool({ connectionString: url, max: 10, ...config });
    created.on('error', () => {
      // An idle connection dropped (a test stopped the server): the next query reports it.
    });
    pools.push(created);
    return created;
  };

  beforeAll(async () => {
    const provided = inject('postgresUrl');
    const error = inject('postgresError');
    if (error) throw new Error(`no PostgreSQL for the tests: ${error}`);
    if (provided) {
      url = provided;
      source = 'provided';
    } else {
      server = await resolvePostgres();
      url = server.url;
      source = server.source;
    }
    admin = pool({ max: 4 });
    defaultPool = pool();
  });

  afterAll(async () => {
    // Schemas matter on a shared server only, but dropping them is cheap everywhere.
    for (const schema of schemas.splice(0)) await admin?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
    await Promise.all(pools.splice(0).map((p) => p.end().catch(() => undefined)));
    await server?.stop();
  });

  const freshSchema = async (): Promise<string> => {
    const schema = `t_${randomBytes(6).toString('hex')}`;
    await admin!.query(`CREATE SCHEMA "${schema}"`);
    schemas.push(schema);
    return schema;
  };

  return {
    get url() {
      return url;
    },
    get source() {
      return source;
    },
    get admin() {
      if (!admin) throw new Error('usePostgres(): the server is not ready');
      return admin;
    },
    pool,
    freshSchema,
    async store(options = {}) {
      const store = new PostgresStore({ pool: defaultPool!, schema: await freshSchema(), ...options });
      await store.migrate();
      return store;
    },
  };
}

/** Resolves after `ms` of real time (leases are judged by the database clock, so time has to pass). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
