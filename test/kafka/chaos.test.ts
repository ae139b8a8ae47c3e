// Chaos, sized for CI: three consumer processes on six partitions while 20 000 stamped messages (20 %
// re-sent duplicates) arrive over ~48 s; a random working member is SIGKILLed and replaced every 3.5–6 s,
// and the store's Redis is restarted once WITH persistence (AOF, fsync always), so records survive it.
// The ledger of effects lives in another Redis that stays up. It must end with nothing lost, every
// duplicate effect a reported takeover, and duplicate effects per kill within the in-flight bound the
// README states; it also bounds how long a replacement idles, how long a partition's committed offset
// stands still, and how long draining takes after the last send. CHAOS_TRACE=1 prints a timeline.
//
// Kills come about once per session timeout (3.5–6 s against 4 s): a member killed while the group
// rebalances holds the rebalance until its session expires, and each replacement's join starts another
// one, so kills much more often than the session timeout keep the group rebalancing and no member gets
// partitions (the "idle replacements" the README explains: a property of Kafka groups, which no
// consumer can bound).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import type { Message } from 'kafkajs';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { uuidv7 } from '@onceonly/core';
import { RedisStore } from '@onceonly/redis';
import { stampMessages } from '@onceonly/kafka';
import { startRedisServer, type LocalRedis } from '../support/redis-server.js';
import { brokers, committed, connectProducer, groupName, kafkaClient, newTopic, sendPaced, waitFor } from './kafka-test-context.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/chaos-consumer.mjs', import.meta.url));

const UNIQUE = 16_000;
const TOTAL = 20_000; // every fifth message re-sends an earlier one
const SEND_CHUNK = 100;
const SEND_EVERY_MS = 240; // 200 chunks: ~48 s of traffic
const KILL_EVERY_MS = [3_500, 6_000] as const;
// The members' settings. A crash re-runs at most, per batch in flight, the running handlers plus the
// completions not yet acknowledged: fewer than CONCURRENCY + 2 × MAX_PENDING (README, "Kafka").
const CONCURRENCY = 8;
const MAX_PENDING = 20;
const PARTITIONS_CONCURRENTLY = 2; // batches in flight per member
const LEASE_MS = 3_000;
const SESSION_TIMEOUT_MS = 4_000;
const STORE_DOWN_MS = 3_000; // long enough for the members' store calls to fail, not just queue
const QUIET_MS = 4_000; // no kill this long before and after the store restart
const PER_CRASH_BOUND = PARTITIONS_CONCURRENTLY * (CONCURRENCY + 2 * MAX_PENDING);
// A replacement applies something, and a partition's committed offset moves again, within: the dead
// member's session timeout (the rebalance waits for it), the rebalance itself, the lease the dead
// member held on the messages it was running (a batch never skips or commits past a message another
// owner holds), one in-progress backoff (500 ms), the start of a Node process and a commit interval
// (1 s). Twice the session timeout and the lease: the next kill may hit the member that just took the
// partition over, once it has applied something (kills pick members at work), so it too leaves held
// messages behind (measured: a 16.8 s stall across two such kills, beyond one lease's bound of 16 s).
// The store restart recovers within its downtime and a lease (completions it refused leave their claims
// to expire), which is less.
const RECOVERY_BOUND_MS = 2 * (SESSION_TIMEOUT_MS + LEASE_MS) + 5_000;
const DRAIN_BOUND_MS = 30_000;

interface Member {
  readonly name: string;
  readonly child: ChildProcess;
  readonly spawnedAt: number;
  joinedAt?: number;
  effectAt?: number;
  exitedAt?: number;
  readonly crashes: string[];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('kafka: chaos', () => {
  const members: Member[] = [];
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const { child } of members.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });

  it('3 processes, 6 partitions, 20 000 messages with 20 % duplicates, random SIGKILLs and a store restart: none lost, duplicate effects within the in-flight bound', { timeout: 240_000 }, async () => {
    // The store: a Redis of its own with an append-only file fsynced on every write, restarted mid-run.
    const dataDir = await mkdtemp(join(tmpdir(), 'onceonly-chaos-redis-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const redisArgs = ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', dataDir];
    let storeServer: LocalRedis = await startRedisServer({ args: redisArgs });
    cleanups.push(() => storeServer.stop());
    const port = storeServer.port;
    const storeUrl = storeServer.url;
    const ledger = new Redis(inject('redisUrl'), { maxRetriesPerRequest: 1 });
    cleanups.push(() => ledger.quit());
    const prefix = `onceonly-chaos-${uuidv7()}`;

    const t0 = Date.now();
    const kafka = kafkaClient();
    const topic = await newTopic('chaos', 6);
    const groupId = groupName('chaos');
    const unique = stampMessages(
      Array.from({ length: UNIQUE }, (_, i): Message => ({ key: `k${i % 500}`, value: JSON.stringify({ n: i, pad: 'x'.repeat(100) }) })),
    );
    const ids = unique.map((m) => String(m.headers!['onceonly-id']));
    const sends: Message[] = [];
    for (let j = 0, u = 0; j < TOTAL; j++) sends.push(j % 5 === 4 ? unique[(j * 7_919) % u]! : unique[u++]!);

    const storeErrors: string[] = [];
    let serial = 0;
    const spawnMember = (): Member => {
      const name = `c${serial++}`;
      const child = spawn(process.execPath, [FIXTURE], {
        env: {
          ...process.env,
          KAFKA_BROKERS: brokers().join(','),
          STORE_URL: storeUrl,
          LEDGER_URL: inject('redisUrl'),
          TOPIC: topic,
          GROUP: groupId,
          PREFIX: prefix,
          NAME: name,
          CONCURRENCY: String(CONCURRENCY),
          MAX_PENDING: String(MAX_PENDING),
          LEASE_MS: String(LEASE_MS),
          SESSION_TIMEOUT_MS: String(SESSION_TIMEOUT_MS),
          PARTITIONS_CONCURRENTLY: String(PARTITIONS_CONCURRENTLY),
          ...(process.env['CHAOS_TRACE'] ? { TRACE: '1' } : {}),
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      if (process.env['CHAOS_TRACE']) console.log(`${((Date.now() - t0) / 1000).toFixed(1)} ${name} spawned`);
      const member: Member = { name, child, spawnedAt: Date.now(), crashes: [] };
      let buffered = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        let newline: number;
        while ((newline = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          const [what, a, b] = line.split(' ');
          if (what === 'joined' && Number(a) > 0) member.joinedAt ??= Number(b);
          else if (what === 'effect') member.effectAt = Number(a);
          else if (what === 'crash') member.crashes.push(line);
          else if (what === 'store-error') storeErrors.push(name);
          if (process.env['CHAOS_TRACE']) console.log(`${((Date.now() - t0) / 1000).toFixed(1)} ${name} ${line}`);
        }
      });
      child.once('exit', () => (member.exitedAt = Date.now()));
      members.push(member);
      return member;
    };
    const live = () => members.filter((m) => m.exitedAt === undefined);

    for (let n = 0; n < 3; n++) spawnMember();
    await waitFor('3 members holding partitions', () => members.every((m) => m.joinedAt !== undefined), 60_000);

    // Committed offsets, polled: how long a partition's committed offset stood still while messages
    // waited on it (the high watermark ahead of it).
    const admin = kafka.admin();
    await admin.connect();
    cleanups.push(() => admin.disconnect());
    let committedNow = 0;
    const movedAt = new Map<number, number>();
    const last = new Map<number, string>();
    let longestStall = 0;
    let stallWhere = '';
    let polling = true;
    const poller = (async () => {
      while (polling) {
        try {
          const [offsets, highs] = await Promise.all([committed(admin, groupId, topic), admin.fetchTopicOffsets(topic)]);
          const now = Date.now();
          let total = 0;
          for (const { partition, high } of highs) {
            const offset = offsets.get(partition) ?? '-1';
            total += Math.max(0, Number(offset));
            // Moved, or nothing waits on it (-1: nothing committed yet, fine while the partition is empty).
            if (offset !== last.get(partition) || Math.max(0, Number(offset)) >= Number(high)) movedAt.set(partition, now);
            else if (now - (movedAt.get(partition) ?? now) > longestStall) {
              longestStall = now - movedAt.get(partition)!;
              stallWhere = `partition ${partition} at offset ${offset}, from ${((movedAt.get(partition)! - t0) / 1000).toFixed(1)} s`;
            }
            last.set(partition, offset);
          }
          committedNow = total;
        } catch {
          // the broker is busy: poll again
        }
        await sleep(250);
      }
    })();

    // Chaos: while messages arrive, every 3.5–6 s a working member is SIGKILLed and replaced; once, half-way,
    // the store is restarted instead (SHUTDOWN on SIGTERM; the AOF is fsynced on every write already),
    // with a quiet spell on each side, so a kill's recovery and the store's do not pile up.
    let kills = 0;
    let sent = 0;
    let sending = true;
    let keysBefore = 0;
    let keysAfter = 0;
    let restartMs = 0;
    const restartStore = async () => {
      const client = new Redis(storeUrl, { maxRetriesPerRequest: 1 });
      keysBefore = await client.dbsize();
      client.disconnect();
      const down = Date.now();
      if (process.env['CHAOS_TRACE']) console.log(`${((down - t0) / 1000).toFixed(1)} STORE DOWN`);
      await storeServer.stop();
      await sleep(STORE_DOWN_MS);
      storeServer = await startRedisServer({ port, args: redisArgs });
      restartMs = Date.now() - down;
      const again = new Redis(storeUrl, { maxRetriesPerRequest: 1 });
      keysAfter = await again.dbsize();
      again.disconnect();
    };
    const chaos = (async () => {
      let storeRestarted = false;
      while (sending) {
        await sleep(KILL_EVERY_MS[0] + Math.random() * (KILL_EVERY_MS[1] - KILL_EVERY_MS[0]));
        if (!sending) break;
        if (!storeRestarted && sent >= TOTAL / 2) {
          storeRestarted = true;
          await sleep(QUIET_MS);
          await restartStore();
          await sleep(QUIET_MS);
          continue;
        }
        // A member at work (it applied something), so the kill lands between effects and completions.
        const working = live().filter((m) => m.effectAt !== undefined);
        const victims = working.length > 0 ? working : live();
        const victim = victims[Math.floor(Math.random() * victims.length)]!;
        victim.child.kill('SIGKILL');
        if (process.env['CHAOS_TRACE']) console.log(`${((Date.now() - t0) / 1000).toFixed(1)} ${victim.name} KILLED`);
        await new Promise((resolve) => (victim.exitedAt !== undefined ? resolve(undefined) : victim.child.once('exit', resolve)));
        kills++;
        spawnMember();
      }
    })();

    // The traffic: 100 messages every 240 ms.
    const producer = await connectProducer(kafka);
    cleanups.push(() => producer.disconnect());
    await sendPaced(producer, topic, sends, { chunk: SEND_CHUNK, everyMs: SEND_EVERY_MS }, (n) => (sent = n));
    const lastSendAt = Date.now();
    sending = false;
    await chaos;
    await waitFor('every offset committed', () => committedNow === TOTAL, 120_000);
    const drainMs = Date.now() - lastSendAt;
    polling = false;
    await poller;

    const effects = new Map(Object.entries(await ledger.hgetall(`${prefix}:ledger`)).map(([id, n]) => [id, Number(n)]));
    const takeovers = new Set(await ledger.smembers(`${prefix}:takeovers`));
    await ledger.unlink(`${prefix}:ledger`, `${prefix}:takeovers`);
    const lost = ids.filter((id) => !effects.has(id));
    const duplicateEffects = [...effects.values()].reduce((sum, n) => sum + n - 1, 0);
    // A second effect only where a run died (or its completion failed) between effect and completion:
    // the next run of that ID is a takeover of its expired lease, and says so.
    const twiceWithoutTakeover = ids.filter((id) => (effects.get(id) ?? 0) > 1 && !takeovers.has(id));
    const crashes = members.flatMap((m) => m.crashes.map((line) => `${m.name}: ${line}`));
    // How long each replacement lived before applying anything (those spawned while messages arrived).
    const idles = members
      .filter((m) => m.spawnedAt < lastSendAt && m.name !== 'c0' && m.name !== 'c1' && m.name !== 'c2')
      .map((m) => ({ name: m.name, idle: (m.effectAt ?? m.exitedAt ?? Date.now()) - m.spawnedAt, applied: m.effectAt !== undefined }));
    const longestIdle = Math.max(0, ...idles.filter((m) => m.applied).map((m) => m.idle));
    // Killed before applying anything, having lived longer than the bound: idle too long.
    const idleTooLong = idles.filter((m) => m.idle > RECOVERY_BOUND_MS);

    // Every ID ends completed in the store (which kept its records across the restart).
    const storeClient = new Redis(storeUrl, { maxRetriesPerRequest: 1 });
    cleanups.push(() => storeClient.quit());
    const store = new RedisStore({ client: storeClient, prefix });
    let notCompleted = 0;
    for (let i = 0; i < ids.length; i += 1_000) {
      const records = await Promise.all(ids.slice(i, i + 1_000).map((id) => store.get(groupId, id)));
      notCompleted += records.filter((r) => r?.state !== 'completed').length;
    }

    const table = [
      ['messages sent', `${TOTAL} (${UNIQUE} IDs, ${TOTAL - UNIQUE} re-sent duplicates)`],
      ['members / partitions', `3 / 6 (concurrency ${CONCURRENCY}, maxPending ${MAX_PENDING}, ${PARTITIONS_CONCURRENTLY} partitions at once, leaseMs ${LEASE_MS})`],
      ['kills (SIGKILL + replacement)', String(kills)],
      ['store restarts (AOF, fsync always)', `1 (down ${restartMs} ms; keys ${keysBefore} before, ${keysAfter} after)`],
      ['lost', String(lost.length)],
      ['duplicate effects', `${duplicateEffects} (takeovers reported: ${takeovers.size}; without one: ${twiceWithoutTakeover.length})`],
      ['duplicate effects per kill', `${(duplicateEffects / Math.max(1, kills)).toFixed(1)}, the store restart's included (bound per crash ${PER_CRASH_BOUND}: ${PARTITIONS_CONCURRENTLY} × (${CONCURRENCY} + 2 × ${MAX_PENDING}))`],
      ['longest idle of a replacement', `${(longestIdle / 1000).toFixed(1)} s (bound ${RECOVERY_BOUND_MS / 1000} s; ${idles.filter((m) => !m.applied).length} killed before applying anything)`],
      ['longest commit stall of a partition', `${(longestStall / 1000).toFixed(1)} s (bound ${RECOVERY_BOUND_MS / 1000} s; ${stallWhere || 'none'})`],
      ['drain after the last send', `${(drainMs / 1000).toFixed(1)} s (bound ${DRAIN_BOUND_MS / 1000} s)`],
      ['members that saw the store down', String(new Set(storeErrors).size)],
      ['consumer crashes', String(crashes.length)],
    ];
    const width = Math.max(...table.map(([name]) => name!.length));
    console.log(`chaos ledger:\n${table.map(([name, value]) => `  ${name!.padEnd(width)}  ${value}`).join('\n')}${crashes.length ? `\n  ${crashes.join('\n  ')}` : ''}`);

    expect(lost).toEqual([]);
    expect(effects.size).toBe(UNIQUE);
    expect(notCompleted).toBe(0);
    expect(keysAfter).toBeGreaterThanOrEqual(keysBefore); // the store did not forget
    expect(kills).toBeGreaterThanOrEqual(5);
    expect(new Set(storeErrors).size).toBeGreaterThan(0); // the restart was felt, not just queued
    expect(twiceWithoutTakeover).toEqual([]);
    // Each kill, and the store restart for each of the three members, may re-run at most its bound.
    expect(duplicateEffects).toBeLessThanOrEqual((kills + 3) * PER_CRASH_BOUND);
    expect(idleTooLong).toEqual([]);
    expect(longestStall).toBeLessThanOrEqual(RECOVERY_BOUND_MS);
    expect(drainMs).toBeLessThanOrEqual(DRAIN_BOUND_MS);
    expect(crashes.filter((line) => line.includes('crash false'))).toEqual([]); // no member stopped for good
  });
});
