// Kafka on PostgreSQL under kills (the PostgreSQL issue's crash test (d)): three consumer processes
// (fixtures/pg-chaos-consumer.mjs, built packages) on six partitions, with a PostgresStore and a ledger
// table in the same database. Each message runs in a transaction of its own: the handler INSERTs its
// ledger row on ctx.tx (no unique constraint on the message ID, so a second effect would show as a
// second row) and the completion commits in that transaction. While 7 500 stamped messages arrive (a
// fifth of them re-sent duplicates), a member at work is SIGKILLed and replaced every 2–4 s of
// working time, mostly with transactions open. The ledger must end with every ID exactly once: none
// lost, no duplicate effect, every record completed, and the committed offsets at the end of every
// partition. Contrast: test/kafka/chaos.test.ts, on Redis, bounds duplicate effects per kill instead.
// About 50 s on a loaded 2-core machine; PG_CHAOS_TRACE=1 prints a status line every 2 s and each kill.
import { randomInt } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { Message } from 'kafkajs';
import { afterEach, describe, expect, it } from 'vitest';
import { stampMessages } from '@onceonly/kafka';
import { WorkerProcess } from '../bullmq/worker-process.js';
import { sleep, usePostgres } from '../postgres/postgres-test-context.js';
import { brokers, committed, connectProducer, groupName, kafkaClient, newTopic, sendPaced, waitFor } from './kafka-test-context.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/pg-chaos-consumer.mjs', import.meta.url));

const TOTAL = 7_500; // every fifth message re-sends an earlier one
const UNIQUE = (TOTAL / 5) * 4;
const SEND_CHUNK = 100;
const SEND_EVERY_MS = 400; // 75 chunks: ~30 s of traffic
const KILL_EVERY_MS = [2_000, 4_000] as const; // of working time: the next kill waits for a member at work
const CHAOS_UNTIL = 0.9; // kills go on until the traffic is sent and this share of the IDs has run,
const CHAOS_MAX_MS = 50_000; // but no longer than this after the members joined (a slow machine still drains)
const CONCURRENCY = 8;
const PARTITIONS_CONCURRENTLY = 2;
const LEASE_MS = 3_000;
const SESSION_TIMEOUT_MS = 4_000;
const DRAIN_TIMEOUT_MS = 90_000;

interface Member {
  readonly name: string;
  readonly worker: WorkerProcess;
  killed: boolean;
}

const postgres = usePostgres();
const members: Member[] = [];
afterEach(async () => {
  await Promise.all(members.splice(0).map((m) => m.worker.kill()));
});

/** The handler runs a member reported: IDs whose ledger row was written in a transaction, committed or not. */
const runsOf = (member: Member) => member.worker.lines.filter((l) => l.point === 'run').map((l) => l.data as { id: string; takeover: boolean; at: number });

describe('kafka on PostgreSQL: a group under kills', () => {
  it('3 processes, 6 partitions, 7 500 messages with 20 % duplicates, a SIGKILL + restart every 2–4 s: lost 0, duplicate effects 0, offsets committed to the end', { timeout: 240_000 }, async () => {
    const t0 = Date.now();
    const schema = (await postgres.store()).tables.schema;
    await postgres.admin.query(
      `CREATE TABLE "${schema}".ledger (n bigserial PRIMARY KEY, message_id text NOT NULL, partition int NOT NULL, "offset" bigint NOT NULL, member text NOT NULL, takeover boolean NOT NULL)`,
    );
    const kafka = kafkaClient();
    const topic = await newTopic('pg-chaos', 6);
    const groupId = groupName('pg-chaos');
    const unique = stampMessages(Array.from({ length: UNIQUE }, (_, i): Message => ({ key: `k${i % 500}`, value: JSON.stringify({ n: i }) })));
    const ids = unique.map((m) => String(m.headers!['onceonly-id']));
    const sends: Message[] = [];
    for (let j = 0, u = 0; j < TOTAL; j++) sends.push(j % 5 === 4 ? unique[(j * 7_919) % u]! : unique[u++]!);

    let serial = 0;
    const spawnMember = (): Member => {
      const name = `c${serial++}`;
      const worker = new WorkerProcess(
        {
          KAFKA_BROKERS: brokers().join(','),
          DATABASE_URL: postgres.url,
          SCHEMA: schema,
          TOPIC: topic,
          GROUP: groupId,
          NAME: name,
          CONCURRENCY,
          PARTITIONS_CONCURRENTLY,
          LEASE_MS,
          SESSION_TIMEOUT_MS,
        },
        FIXTURE,
      );
      const member: Member = { name, worker, killed: false };
      members.push(member);
      return member;
    };
    const live = () => members.filter((m) => !m.killed);

    for (let n = 0; n < 3; n++) spawnMember();
    await Promise.all(members.map((m) => m.worker.waitFor((l) => l.point === 'joined' && (l.data['partitions'] as number) > 0, 60_000)));

    // Chaos: every 2–4 s of working time, a member that ran a handler in the last 500 ms (so it most
    // likely has transactions open) is SIGKILLed and replaced.
    let kills = 0;
    let sending = true;
    let stopped = false; // the test is over, whatever happened
    const ran = () => new Set(members.flatMap((m) => runsOf(m).map((r) => r.id))).size;
    const chaosEnd = Date.now() + CHAOS_MAX_MS;
    const chaosOn = () => !stopped && Date.now() < chaosEnd && (sending || ran() < CHAOS_UNTIL * UNIQUE);
    const chaos = (async () => {
      while (chaosOn()) {
        await sleep(KILL_EVERY_MS[0] + randomInt(KILL_EVERY_MS[1] - KILL_EVERY_MS[0]));
        let working: Member[] = [];
        while (chaosOn() && (working = live().filter((m) => (runsOf(m).at(-1)?.at ?? 0) > Date.now() - 500)).length === 0) await sleep(50);
        if (!chaosOn()) break;
        const victim = working[randomInt(working.length)]!;
        victim.killed = true;
        if (process.env['PG_CHAOS_TRACE']) console.log(`${((Date.now() - t0) / 1000).toFixed(1)} s: kill ${victim.name}`);
        await victim.worker.kill();
        kills++;
        spawnMember();
      }
    })();

    // PG_CHAOS_TRACE=1: a status line every 2 s (IDs run, kills, each member's partitions and runs).
    let sent = 0;
    const status = () => {
      const each = live().map((m) => {
        const joined = m.worker.lines.filter((l) => l.point === 'joined').at(-1)?.data['partitions'] ?? '-';
        const last = runsOf(m).at(-1)?.at;
        return `${m.name}[p${String(joined)} r${runsOf(m).length}${last ? ` ${((Date.now() - last) / 1000).toFixed(1)}s ago` : ''}]`;
      });
      return `${((Date.now() - t0) / 1000).toFixed(1)} s: sent ${sent}, IDs run ${ran()}, kills ${kills}; ${each.join(' ')}`;
    };
    const tracer = process.env['PG_CHAOS_TRACE'] ? setInterval(() => console.log(status()), 2_000) : undefined;
    const producer = await connectProducer(kafka);
    const admin = kafka.admin();
    await admin.connect();
    try {
      await sendPaced(producer, topic, sends, { chunk: SEND_CHUNK, everyMs: SEND_EVERY_MS }, (n) => (sent = n));
      const lastSendAt = Date.now();
      sending = false;
      await chaos;
      // Every partition's committed offset at its end (kafkajs commits every second while a batch runs).
      const highs = new Map((await admin.fetchTopicOffsets(topic)).map(({ partition, high }) => [partition, high]));
      let offsets = new Map<number, string>();
      await waitFor(
        'every offset committed',
        async () => {
          await sleep(250);
          offsets = await committed(admin, groupId, topic);
          return [...highs].every(([partition, high]) => Math.max(0, Number(offsets.get(partition) ?? -1)) >= Number(high));
        },
        DRAIN_TIMEOUT_MS,
      ).catch((error: unknown) => {
        throw new Error(`${String(error)}; committed ${JSON.stringify([...offsets])} of ${JSON.stringify([...highs])}; ${status()}`);
      });
      const drainMs = Date.now() - lastSendAt;
      await sleep(1_000); // a straggler's commit, if any, would land now

      const rows = (await postgres.admin.query<{ message_id: string; member: string; takeover: boolean }>(`SELECT message_id, member, takeover FROM "${schema}".ledger`)).rows;
      const effects = new Map<string, number>();
      for (const row of rows) effects.set(row.message_id, (effects.get(row.message_id) ?? 0) + 1);
      const lost = ids.filter((id) => !effects.has(id));
      const duplicateEffects = rows.length - effects.size;
      const twice = [...effects].filter(([, n]) => n > 1).map(([id]) => id);
      const { rows: states } = await postgres.admin.query<{ state: number; n: string }>(
        `SELECT state, count(*)::text AS n FROM "${schema}".onceonly_records WHERE scope = $1 GROUP BY state`,
        [groupId],
      );
      const completed = Number(states.find((s) => s.state === 2)?.n ?? 0);
      // Effects a kill rolled back: ledger rows a killed member wrote in a transaction that never
      // committed. Without the transaction (any other store), each would be an applied effect that the
      // takeover applied again: a duplicate.
      const bookedBy = new Set(rows.map((r) => `${r.member} ${r.message_id}`));
      const rolledBack = members.filter((m) => m.killed).reduce((sum, m) => sum + runsOf(m).filter((r) => !bookedBy.has(`${m.name} ${r.id}`)).length, 0);
      const takeovers = rows.filter((r) => r.takeover).length;
      const crashes = members.flatMap((m) => m.worker.lines.filter((l) => l.point === 'crash').map((l) => `${m.name}: ${JSON.stringify(l.data)}`));

      const table = [
        ['messages sent', `${TOTAL} (${UNIQUE} IDs, ${TOTAL - UNIQUE} re-sent duplicates)`],
        ['members / partitions', `3 / 6 (concurrency ${CONCURRENCY}, ${PARTITIONS_CONCURRENTLY} partitions at once, leaseMs ${LEASE_MS}, sessionTimeout ${SESSION_TIMEOUT_MS})`],
        ['kills (SIGKILL + replacement)', String(kills)],
        ['lost', String(lost.length)],
        ['duplicate effects', `${duplicateEffects} (ledger rows ${rows.length}, IDs ${effects.size})`],
        ['effects rolled back by a kill', `${rolledBack} (rows written on ctx.tx, never committed; each a duplicate effect without the transaction)`],
        ['rows committed by a takeover', String(takeovers)],
        ['records completed', `${completed} of ${UNIQUE}`],
        ['committed offsets', `${[...offsets.values()].reduce((sum, o) => sum + Math.max(0, Number(o)), 0)} of ${TOTAL} (every partition at its end)`],
        ['drain after the last send', `${(drainMs / 1000).toFixed(1)} s`],
        ['consumer crashes', String(crashes.length)],
        ['run time', `${((Date.now() - t0) / 1000).toFixed(1)} s`],
      ];
      const width = Math.max(...table.map(([name]) => name!.length));
      console.log(`postgres chaos ledger:\n${table.map(([name, value]) => `  ${name!.padEnd(width)}  ${value}`).join('\n')}${crashes.length ? `\n  ${crashes.join('\n  ')}` : ''}`);

      expect(lost).toEqual([]);
      expect(twice).toEqual([]);
      expect(duplicateEffects).toBe(0);
      expect(completed).toBe(UNIQUE);
      expect(kills).toBeGreaterThanOrEqual(4);
      expect(rolledBack).toBeGreaterThan(0); // the kills did land inside open transactions
      expect(crashes.filter((line) => line.includes('"restart":false'))).toEqual([]); // no member stopped for good
    } finally {
      stopped = true;
      clearInterval(tracer);
      await chaos.catch(() => undefined);
      await Promise.all([producer.disconnect(), admin.disconnect()]);
    }
  });
});
