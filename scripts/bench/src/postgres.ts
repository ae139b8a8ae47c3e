import { randomBytes } from 'node:crypto';
import { DedupProcessor, uuidv7, type ClaimResult } from '@onceonly/core';
import { PostgresStore } from '@onceonly/postgres';
import pg from 'pg';
import { compare, rate, type Row } from './table.js';

const LEASE = 30_000;
const WINDOW = 86_400_000;
const BATCH = 100;

function acquired(claim: ClaimResult | undefined): number {
  if (claim?.status !== 'acquired') throw new Error(`bench: unexpected claim answer ${claim?.status}`);
  return claim.token;
}

/** A pool whose `query` calls (one statement, one round trip each) are counted. */
function countingPool(config: pg.PoolConfig): { pool: pg.Pool; statements: () => number } {
  const pool = new pg.Pool(config);
  pool.on('error', () => {});
  let statements = 0;
  const query = pool.query.bind(pool);
  pool.query = ((...args: Parameters<typeof pool.query>) => {
    statements++;
    return query(...args);
  }) as typeof pool.query;
  return { pool, statements: () => statements };
}

/** Runs `work(i)` for i in 0..n-1, `concurrency` at a time; `rate` of the whole. */
async function drain(n: number, concurrency: number, work: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  return rate(n, async () => {
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < n) await work(next++);
      }),
    );
  });
}

/**
 * The PostgreSQL store against the cheapest SQL that does a comparable job, on the same server in the
 * same run:
 * - batch claim + complete of 100 IDs (`claimMany`, `completeMany`: one statement each) against a plain
 *   table keyed the same way: `INSERT … SELECT unnest(…) ON CONFLICT DO NOTHING`, then `UPDATE … WHERE
 *   id = ANY(…)` of the same rows (one statement each too); and the statements per batch;
 * - transactional processing (`DedupProcessor.process`, the handler's INSERT on `ctx.tx`, the
 *   completion in the same transaction) against a raw consumer running the same INSERT in a
 *   transaction of its own per message (BEGIN, INSERT, COMMIT), one at a time and 10 at once, and
 *   `processBatch` of 100 (one claim statement per batch, then a transaction per message, as a Kafka
 *   consumer runs) against the raw consumer in order;
 * - bytes per retained ID (`pg_total_relation_size` of the records table, its indexes included, as
 *   loaded) against the plain table holding the same IDs.
 */
export async function postgresBench(
  url: string,
  options: { n: number; messages: number; retained: number; rounds: number },
  progress: (s: string) => void,
): Promise<{ rows: Row[]; notes: string[] }> {
  const schema = `onceonly_bench_${randomBytes(4).toString('hex')}`;
  const { pool, statements } = countingPool({ connectionString: url, max: 14 });
  // The transactional rows run on a pipelined pool (`pipeline: true`), where the store sends BEGIN
  // with the handler's first statement and its completion with the COMMIT; the raw consumer runs on
  // the same pool, awaiting each statement as such consumers are written.
  const txPool = new pg.Pool({ connectionString: url, max: 14, pipeline: true });
  txPool.on('error', () => {});
  const rows: Row[] = [];
  const notes: string[] = [];
  await pool.query(`CREATE SCHEMA ${schema}`);
  try {
    const store = new PostgresStore({ pool, schema });
    await store.migrate();
    await pool.query(`CREATE TABLE ${schema}.plain (scope text NOT NULL, id text COLLATE "C" NOT NULL, state smallint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (scope, id))`);
    await pool.query(`CREATE TABLE ${schema}.ledger (n bigserial PRIMARY KEY, message_id text NOT NULL, cents int NOT NULL)`);
    // Planned at every call, as the store's batch updates are: a prepared plan made while the table
    // was small would scan the whole table at every call as it grows (test/postgres/plans.test.ts).
    const plainInsert = { text: `INSERT INTO ${schema}.plain (scope, id, state) SELECT 'bench', unnest($1::text[]), 1 ON CONFLICT DO NOTHING` };
    const plainUpdate = { text: `UPDATE ${schema}.plain SET state = 2, updated_at = now() WHERE scope = 'bench' AND id = ANY($1::text[])` };
    const ledgerInsert = { name: 'bench_ledger_insert', text: `INSERT INTO ${schema}.ledger (message_id, cents) VALUES ($1, $2)` };
    const txStore = new PostgresStore({ pool: txPool, schema });
    // The baseline of the transactional rows: a consumer doing the same INSERT in its own transaction per message.
    const rawConsumer = (concurrency: number) => {
      const ids = Array.from({ length: options.messages }, () => uuidv7());
      return drain(options.messages, concurrency, async (i) => {
        const client = await txPool.connect();
        try {
          await client.query('BEGIN');
          await client.query({ ...ledgerInsert, values: [ids[i], 250] });
          await client.query('COMMIT');
        } finally {
          client.release();
        }
      });
    };

    const batches = async (ids: string[]) => {
      for (let i = 0; i < ids.length; i += BATCH) {
        const batch = ids.slice(i, i + BATCH);
        const claims = await store.claimMany(batch.map((id) => ({ scope: 'bench', id, leaseMs: LEASE, windowMs: WINDOW })));
        await store.completeMany(batch.map((id, k) => ({ scope: 'bench', id, token: acquired(claims[k]), windowMs: WINDOW })));
      }
    };
    const plainBatches = async (ids: string[]) => {
      for (let i = 0; i < ids.length; i += BATCH) {
        const batch = ids.slice(i, i + BATCH);
        await pool.query({ ...plainInsert, values: [batch] });
        await pool.query({ ...plainUpdate, values: [batch] });
      }
    };

    progress(`postgres store: claim+complete, batches of ${BATCH} (${options.n} IDs × ${options.rounds})`);
    let storeStatements = 0;
    const batched = await compare(
      options.rounds,
      async () => {
        const ids = Array.from({ length: options.n }, () => uuidv7());
        const before = statements();
        const result = await rate(options.n, () => batches(ids));
        storeStatements += statements() - before;
        return result;
      },
      async () => {
        const ids = Array.from({ length: options.n }, () => uuidv7());
        return rate(options.n, () => plainBatches(ids));
      },
    );
    rows.push({
      group: 'postgres',
      name: `claim+complete, batches of ${BATCH}`,
      ...batched,
      baselineName: `INSERT…ON CONFLICT DO NOTHING ×${BATCH}, then UPDATE ×${BATCH}`,
      unit: 'ops/s',
      target: { text: '≥ 0.50 of baseline', met: (r) => r.value / r.baseline >= 0.5 },
    });
    const batchCount = (options.n / BATCH) * options.rounds;
    notes.push(`postgres: ${storeStatements} statements over ${batchCount} batches of ${BATCH} = ${(storeStatements / batchCount).toFixed(2)} round trips per batch (target: exactly 2)`);
    await pool.query(`TRUNCATE ${schema}.onceonly_records, ${schema}.plain`);

    for (const concurrency of [1, 10]) {
      progress(`postgres store: transactional processing, concurrency ${concurrency} (${options.messages} messages × ${options.rounds})`);
      const processor = new DedupProcessor({ scope: 'ledger', store: txStore, windowMs: WINDOW, leaseMs: LEASE, fingerprint: false });
      const processed = await compare(
        options.rounds,
        async () => {
          const ids = Array.from({ length: options.messages }, () => uuidv7());
          return drain(options.messages, concurrency, async (i) => {
            const outcome = await processor.process({ id: ids[i] }, async ({ tx, id }) => {
              await tx.query({ ...ledgerInsert, values: [id, 250] });
            });
            if (outcome.status !== 'processed') throw new Error(`bench: unexpected outcome ${outcome.status}`);
          });
        },
        () => rawConsumer(concurrency),
      );
      await processor.close();
      rows.push({
        group: 'postgres',
        name: `transactional process(), concurrency ${concurrency}`,
        ...processed,
        baselineName: `raw consumer: BEGIN, INSERT, COMMIT per message, concurrency ${concurrency}`,
        unit: 'ops/s',
        target: { text: '≥ 0.80 of baseline', met: (r) => r.value / r.baseline >= 0.8 },
      });
      await pool.query(`TRUNCATE ${schema}.ledger, ${schema}.onceonly_records`);
    }

    progress(`postgres store: transactional processBatch of ${BATCH} (${options.messages} messages × ${options.rounds})`);
    const batchProcessor = new DedupProcessor({ scope: 'ledger', store: txStore, windowMs: WINDOW, leaseMs: LEASE, fingerprint: false });
    const batchedTx = await compare(
      options.rounds,
      async () => {
        const ids = Array.from({ length: options.messages }, () => uuidv7());
        return rate(options.messages, async () => {
          for (let i = 0; i < ids.length; i += BATCH) {
            const result = await batchProcessor.processBatch(
              ids.slice(i, i + BATCH).map((id) => ({ id })),
              async ({ tx, id }) => {
                await tx.query({ ...ledgerInsert, values: [id, 250] });
              },
            );
            if (result.done !== Math.min(BATCH, ids.length - i)) throw new Error('bench: a batch stopped early');
          }
        });
      },
      () => rawConsumer(1),
    );
    await batchProcessor.close();
    rows.push({
      group: 'postgres',
      name: `transactional processBatch(${BATCH}), in order`,
      ...batchedTx,
      baselineName: 'raw consumer: BEGIN, INSERT, COMMIT per message, in order',
      unit: 'ops/s',
      target: { text: '≥ 0.80 of baseline', met: (r) => r.value / r.baseline >= 0.8 },
    });
    await pool.query(`TRUNCATE ${schema}.ledger, ${schema}.onceonly_records`);

    progress(`postgres store: bytes per retained ID (${options.retained} IDs)`);
    const ids = Array.from({ length: options.retained }, () => uuidv7());
    const loadStarted = performance.now();
    for (let i = 0; i < ids.length; i += 500) {
      const batch = ids.slice(i, i + 500);
      const claims = await store.claimMany(batch.map((id) => ({ scope: 'bench', id, leaseMs: LEASE, windowMs: WINDOW })));
      await store.completeMany(batch.map((id, k) => ({ scope: 'bench', id, token: acquired(claims[k]), windowMs: WINDOW })));
    }
    const loadRate = (ids.length / (performance.now() - loadStarted)) * 1000;
    for (let i = 0; i < ids.length; i += 500) {
      const batch = ids.slice(i, i + 500);
      await pool.query({ ...plainInsert, values: [batch] });
      await pool.query({ ...plainUpdate, values: [batch] });
    }
    const size = async (table: string) =>
      Number((await pool.query<{ bytes: string }>(`SELECT pg_total_relation_size('${schema}.${table}') AS bytes`)).rows[0]!.bytes);
    const [records, plain] = [await size('onceonly_records'), await size('plain')];
    rows.push({
      group: 'postgres',
      name: `bytes per retained ID (${options.retained.toLocaleString('en')} UUIDv7 IDs)`,
      value: records / ids.length,
      baselineName: 'plain (scope, id) table, same IDs, same two writes',
      baseline: plain / ids.length,
      unit: 'bytes',
    });
    notes.push(
      `postgres: ${options.retained.toLocaleString('en')} retained IDs take ${(records / 2 ** 20).toFixed(0)} MiB with indexes, as loaded ` +
        `(claim+complete in batches of 500 at ${(loadRate / 1000).toFixed(1)} k IDs/s); the plain table ${(plain / 2 ** 20).toFixed(0)} MiB`,
    );
  } finally {
    await pool.query(`DROP SCHEMA ${schema} CASCADE`).catch(() => undefined);
    await Promise.all([pool.end(), txPool.end()]);
  }
  return { rows, notes };
}
