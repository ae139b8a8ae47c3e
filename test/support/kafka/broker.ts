// A real Apache Kafka broker for integration tests.
//
// startKafka() runs a single-node KRaft broker (combined broker+controller)
// straight from the Maven Central jars that scripts/kafka/fetch-jars.sh puts
// in <repo>/.cache/kafka-jars: no Docker, no Kafka install, loopback only.
// resolveKafka() picks the cheapest available source: KAFKA_BROKERS, the
// local jars, or (best effort) testcontainers.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kafka, Partitioners, logLevel } from 'kafkajs';
import { freePort } from '../processes.js';

export { freePort } from '../processes.js';

export interface RunningKafka {
  brokers: string[];
  stop(): Promise<void>;
}

export interface LocalKafka extends RunningKafka {
  /** Broker log (log4j); gone after stop() unless keepDir is set. */
  logFile: string;
  /** Temp dir holding config, data and logs. */
  dir: string;
}

export interface ResolvedKafka extends RunningKafka {
  /** Where the broker came from: 'env:KAFKA_BROKERS' | 'local-jars' | 'testcontainers'. */
  source: string;
}

export interface StartKafkaOptions {
  /** Jar folder; defaults to <repo>/.cache/kafka-jars. */
  jarsDir?: string;
  /** java executable; defaults to $JAVA_HOME/bin/java, else `java` on PATH. */
  java?: string;
  /** Deadline for the whole start (format, boot, first admin answer). Default 60 s. */
  readyTimeoutMs?: number;
  /** How long stop() waits after SIGTERM before SIGKILL. Default 15 s. */
  stopTimeoutMs?: number;
  /** Default false: tests create their topics explicitly (see createTopic). */
  autoCreateTopics?: boolean;
  /** log4j level of the broker's own log file. Default INFO. */
  logLevel?: 'INFO' | 'WARN';
  /** Extra or overriding server.properties entries. */
  serverProperties?: Record<string, string | number | boolean>;
  /** JVM options; default a small heap. */
  jvmArgs?: string[];
  /** Keep the temp dir (logs, data) after stop(), for debugging. */
  keepDir?: boolean;
  /**
   * Default true: before resolving, make the broker create its group and
   * transaction coordinators (about 1 s), so the first consumer or
   * transactional producer of a test does not log kafkajs ERRORs
   * ("group coordinator is not available") and retry.
   */
  warmUp?: boolean;
}

// ---------------------------------------------------------------- paths

// Walk up from this file rather than counting '..', so it also works if the
// file is compiled to another folder depth.
function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'scripts', 'kafka', 'pom.xml'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('kafka broker: cannot find the repo root (scripts/kafka/pom.xml) above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

// Lazy, so KAFKA_BROKERS users never depend on the repo layout.
let repoRootCache: string | undefined;
const repoRoot = (): string => (repoRootCache ??= findRepoRoot());
const defaultJarsDir = (): string => join(repoRoot(), '.cache', 'kafka-jars');
const fetchScript = (): string => join(repoRoot(), 'scripts', 'kafka', 'fetch-jars.sh');

function javaBin(): string {
  const home = process.env['JAVA_HOME'];
  return home ? join(home, 'bin', 'java') : 'java';
}

function hasJars(dir: string): boolean {
  try {
    return readdirSync(dir).some((f) => /^kafka_2\.13-.*\.jar$/.test(f));
  } catch {
    return false;
  }
}

// fetch-jars.sh writes the pom's sha256 as .stamp; a mismatch means pom.xml
// changed (e.g. a version bump) since the cache was filled.
function jarsAreCurrent(dir: string): boolean {
  try {
    const want = createHash('sha256').update(readFileSync(join(repoRoot(), 'scripts', 'kafka', 'pom.xml'))).digest('hex');
    return hasJars(dir) && readFileSync(join(dir, '.stamp'), 'utf8').trim() === want;
  } catch {
    return false;
  }
}

function commandWorks(cmd: string, args: string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 30_000 });
  return r.error === undefined && r.status === 0;
}

// ---------------------------------------------------------------- small utils

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Unique, topic-safe name: `<prefix>-<time>-<random>`. */
export function randomName(prefix: string): string {
  const safe = prefix.replace(/[^a-zA-Z0-9-]/g, '-');
  return `${safe}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}

/**
 * For error messages: from each existing file, its ERROR/FATAL lines (each
 * with the exception line after it; at INFO the real cause is usually far
 * above the shutdown noise at the end), then its last lines.
 */
async function brokerOutput(files: string[], lastLines = 25): Promise<string> {
  const parts: string[] = [];
  for (const f of files) {
    let text: string;
    try {
      const fh = await open(f, 'r');
      try {
        const { size } = await fh.stat();
        const len = Math.min(size, 512 * 1024);
        const buf = Buffer.alloc(len);
        await fh.read(buf, 0, len, size - len);
        text = buf.toString('utf8').trimEnd();
      } finally {
        await fh.close();
      }
    } catch {
      continue; // not written yet
    }
    if (!text) continue;
    const lines = text.split('\n');
    const errors: string[] = [];
    lines.forEach((l, i) => {
      if (errors.length < 16 && / (ERROR|FATAL) /.test(l)) errors.push(l, ...lines.slice(i + 1, i + 2).filter((n) => !n.startsWith('[')));
    });
    if (errors.length) parts.push(`--- ${f} (errors) ---\n${errors.join('\n')}`);
    parts.push(`--- ${f} (last ${lastLines} lines) ---\n${lines.slice(-lastLines).join('\n')}`);
  }
  return parts.length ? '\n' + parts.join('\n') : '\n(no broker output)';
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (exited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

/** Runs a short command to completion; its output goes to `logPath`. */
async function runToFile(cmd: string, args: string[], logPath: string): Promise<number | null> {
  const fd = openSync(logPath, 'a');
  try {
    const child = spawn(cmd, args, { stdio: ['ignore', fd, fd] });
    return await new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => resolve(code));
    });
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------- config

// Broker tuning shared by the local broker and the container: everything but
// listeners and storage.
function brokerSettings(opts: StartKafkaOptions): Record<string, string | number | boolean> {
  return {
    // One replica everywhere; internal topics with one partition load fast.
    'num.partitions': 1,
    'default.replication.factor': 1,
    'min.insync.replicas': 1,
    'offsets.topic.replication.factor': 1,
    'offsets.topic.num.partitions': 1,
    'transaction.state.log.replication.factor': 1,
    'transaction.state.log.min.isr': 1,
    'transaction.state.log.num.partitions': 1,
    // Fast consumer-group tests: no initial join delay, short sessions allowed.
    'group.initial.rebalance.delay.ms': 0,
    'group.min.session.timeout.ms': 1000,
    // Explicit topics only: a typo'd topic fails instead of silently being
    // created with num.partitions=1, and tests control the partition count.
    'auto.create.topics.enable': opts.autoCreateTopics ?? false,
    // Small footprint: the cleaner's dedupe buffer defaults to 128 MiB.
    'log.cleaner.dedupe.buffer.size': 2 * 1024 * 1024,
    'num.network.threads': 2,
    'num.io.threads': 4,
    'background.threads': 4,
    ...opts.serverProperties,
  };
}

function serverProperties(p: { dir: string; port: number; controllerPort: number; opts: StartKafkaOptions }): string {
  const props: Record<string, string | number | boolean> = {
    // KRaft, one node that is both broker and controller. A static voter set
    // (controller.quorum.voters) means `StorageTool format` needs no
    // --standalone / --initial-controllers (those are for dynamic quorums).
    'process.roles': 'broker,controller',
    'node.id': 1,
    'controller.quorum.voters': `1@127.0.0.1:${p.controllerPort}`,
    'controller.listener.names': 'CONTROLLER',
    listeners: `PLAINTEXT://127.0.0.1:${p.port},CONTROLLER://127.0.0.1:${p.controllerPort}`,
    'advertised.listeners': `PLAINTEXT://127.0.0.1:${p.port}`,
    'inter.broker.listener.name': 'PLAINTEXT',
    'listener.security.protocol.map': 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    'log.dirs': join(p.dir, 'data'),
    ...brokerSettings(p.opts),
  };
  return Object.entries(props).map(([k, v]) => `${k}=${String(v)}`).join('\n') + '\n';
}

function log4jProperties(logFile: string, level: string): string {
  // Everything to one file in the temp dir, never to the test output.
  return [
    `log4j.rootLogger=${level}, file`,
    'log4j.appender.file=org.apache.log4j.FileAppender',
    `log4j.appender.file.File=${logFile}`,
    'log4j.appender.file.layout=org.apache.log4j.PatternLayout',
    'log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n',
    // Per-request logging is noise even at INFO.
    'log4j.logger.kafka.request.logger=WARN',
    'log4j.logger.state.change.logger=WARN',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------- readiness

async function adminAnswers(brokers: string[]): Promise<boolean> {
  // Quiet, no retries: the caller polls.
  const kafka = new Kafka({ clientId: 'onceonly-ready', brokers, logLevel: logLevel.NOTHING, connectionTimeout: 1000, requestTimeout: 3000, retry: { retries: 0 } });
  const admin = kafka.admin();
  try {
    await admin.connect();
    await admin.listTopics();
    return true;
  } catch {
    return false;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

// __consumer_offsets and __transaction_state are created on the first
// FindCoordinator; doing that here keeps the retries (and kafkajs ERROR lines)
// out of the tests. kafkajs' own retries bound the time.
async function warmUpCoordinators(brokers: string[]): Promise<void> {
  const kafka = new Kafka({ clientId: 'onceonly-warmup', brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  const producer = kafka.producer({
    transactionalId: randomName('onceonly-warmup'),
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  try {
    await Promise.all([
      admin.connect().then(() => admin.describeGroups(['onceonly-warmup'])), // FindCoordinator(GROUP)
      producer.connect(), // InitProducerId via FindCoordinator(TRANSACTION)
    ]);
  } finally {
    await Promise.all([admin.disconnect().catch(() => undefined), producer.disconnect().catch(() => undefined)]);
  }
}

// ---------------------------------------------------------------- process guard

// stop() and the 'exit' hook below cover a normal or failing test run. A
// runner that is killed (SIGKILL, a CI timeout, a SIGTERM with no handler)
// runs neither, so a tiny `sh` guard holds a pipe from us: when this process
// dies the pipe closes, `read` returns, and the guard kills java and removes
// the temp dir. The loop is bounded because an unreaped zombie stays "alive"
// to kill -0.
const GUARD_SCRIPT =
  'read _ ; kill -9 "$1" 2>/dev/null; i=0; ' +
  'while kill -0 "$1" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; ' +
  '[ -n "$2" ] && rm -rf "$2"';

function startGuard(javaPid: number, dirToRemove: string): ChildProcess {
  const guard = spawn('sh', ['-c', GUARD_SCRIPT, 'kafka-guard', String(javaPid), dirToRemove], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  guard.on('error', () => undefined); // no sh: we still have stop() and 'exit'
  guard.unref();
  // The pipe must not keep the event loop alive either.
  (guard.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  return guard;
}

// Synchronous last resort, in case stop() is never called.
const liveChildren = new Set<{ java: ChildProcess; guard: ChildProcess; dir: string; keepDir: boolean }>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of liveChildren) {
      // The guard stays alive: once we are gone it sees EOF, waits for java
      // to vanish and removes the dir if the rmSync below raced java.
      c.java.kill('SIGKILL');
      if (!c.keepDir) {
        try {
          rmSync(c.dir, { recursive: true, force: true });
        } catch {
          // java may still hold files for a moment; the OS temp dir reaps it
        }
      }
    }
  });
}

// ---------------------------------------------------------------- startKafka

/**
 * Starts a fresh single-node KRaft broker on 127.0.0.1 free ports, formatted
 * into a new temp dir, and resolves once it answers an admin call.
 */
export async function startKafka(opts: StartKafkaOptions = {}): Promise<LocalKafka> {
  // A port from freePort() can be taken by someone else before java binds it
  // (e.g. an outgoing connection of a parallel test): retry with new ports.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startKafkaOnce(opts);
    } catch (err) {
      if (attempt >= 3 || !/Address already in use/.test((err as Error).message)) throw err;
    }
  }
}

async function startKafkaOnce(opts: StartKafkaOptions): Promise<LocalKafka> {
  const jarsDir = opts.jarsDir ?? defaultJarsDir();
  if (!hasJars(jarsDir)) {
    throw new Error(`kafka broker: no Kafka jars in ${jarsDir}; run scripts/kafka/fetch-jars.sh (needs mvn)`);
  }
  const java = opts.java ?? javaBin();
  const readyTimeoutMs = opts.readyTimeoutMs ?? 60_000;
  const started = Date.now();

  const dir = await mkdtemp(join(tmpdir(), 'onceonly-kafka-'));
  const logFile = join(dir, 'server.log');
  const outFile = join(dir, 'stdout.log'); // JVM-level output (crashes, bad flags)
  const propsFile = join(dir, 'server.properties');
  const log4jFile = join(dir, 'log4j.properties');
  const cleanup = () => (opts.keepDir ? Promise.resolve() : rm(dir, { recursive: true, force: true }));

  const [port, controllerPort] = await Promise.all([freePort(), freePort()]);
  await writeFile(propsFile, serverProperties({ dir, port, controllerPort, opts }));
  await writeFile(log4jFile, log4jProperties(logFile, opts.logLevel ?? 'INFO'));

  const classpath = join(jarsDir, '*'); // the JVM expands `dir/*` itself
  const commonJvm = [`-Dlog4j.configuration=file:${log4jFile}`, `-Dkafka.logs.dir=${dir}`, '-Djava.awt.headless=true'];

  // Every start is a fresh cluster: new id, empty log dir.
  // Kafka's Uuid format: 22 chars. One in 64 starts with '-', which StorageTool reads as an option.
  let clusterId: string;
  do clusterId = randomBytes(16).toString('base64url');
  while (clusterId.startsWith('-'));
  let code: number | null;
  try {
    // One-shot tool: C1 only and serial GC start faster.
    code = await runToFile(java, ['-Xmx256m', '-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC', ...commonJvm, '-cp', classpath, 'kafka.tools.StorageTool', 'format', '-t', clusterId, '-c', propsFile], outFile);
  } catch (err) {
    await cleanup();
    throw new Error(`kafka broker: cannot run ${java}: ${(err as Error).message}`, { cause: err });
  }
  if (code !== 0) {
    const tail = await brokerOutput([outFile, logFile]);
    await cleanup();
    throw new Error(`kafka broker: StorageTool format exited with ${code}${tail}`);
  }

  const outFd = openSync(outFile, 'a');
  const javaProc = spawn(java, [...(opts.jvmArgs ?? ['-Xmx512m', '-Xms256m']), ...commonJvm, '-cp', classpath, 'kafka.Kafka', propsFile], {
    stdio: ['ignore', outFd, outFd],
  });
  closeSync(outFd); // the child has its own copy
  let spawnError: Error | undefined;
  javaProc.on('error', (e) => (spawnError = e));
  // Not ref'd: a test that forgets stop() must not hang the runner; the
  // 'exit' hook and the guard then kill java.
  javaProc.unref();

  const guard = javaProc.pid !== undefined ? startGuard(javaProc.pid, opts.keepDir ? '' : dir) : undefined;
  const entry = guard ? { java: javaProc, guard, dir, keepDir: opts.keepDir ?? false } : undefined;
  if (entry) liveChildren.add(entry);
  installExitHook();
  // If java dies on its own, drop the guard now so it can never kill a
  // recycled pid later.
  javaProc.once('exit', () => {
    guard?.kill('SIGKILL');
    if (entry) liveChildren.delete(entry);
  });

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      guard?.kill('SIGKILL');
      if (!exited(javaProc)) {
        javaProc.kill('SIGTERM'); // Kafka's shutdown hook does a clean shutdown
        if (!(await waitExit(javaProc, opts.stopTimeoutMs ?? 15_000))) {
          javaProc.kill('SIGKILL');
          await waitExit(javaProc, 5_000);
        }
      }
      if (entry) liveChildren.delete(entry);
      await cleanup();
    })());

  const brokers = [`127.0.0.1:${port}`];
  const deadline = started + readyTimeoutMs;
  for (;;) {
    if (spawnError || exited(javaProc)) {
      const why = spawnError ? `could not start ${java}: ${spawnError.message}` : `exited early (code ${javaProc.exitCode}, signal ${javaProc.signalCode})`;
      const tail = await brokerOutput([outFile, logFile]);
      await stop();
      throw new Error(`kafka broker: ${why}${tail}`);
    }
    if (await adminAnswers(brokers)) break;
    if (Date.now() > deadline) {
      const tail = await brokerOutput([outFile, logFile]);
      await stop();
      throw new Error(`kafka broker: not ready after ${readyTimeoutMs} ms on ${brokers[0]}${tail}`);
    }
    await sleep(200);
  }

  if (opts.warmUp ?? true) {
    try {
      await warmUpCoordinators(brokers);
    } catch (err) {
      const tail = await brokerOutput([outFile, logFile]);
      await stop();
      throw new Error(`kafka broker: coordinator warm-up failed: ${(err as Error).message}${tail}`, { cause: err });
    }
  }

  return { brokers, stop, logFile, dir };
}

// ---------------------------------------------------------------- testcontainers (best effort)

// BEST EFFORT, never run here (no Docker engine on the dev machines). Uses
// only the `testcontainers` package (11.x, an optional dependency of the
// test workspace), imported by a computed name so nothing breaks when it is
// absent. It runs the official apache/kafka image (same 3.9 line as the
// jars) configured through KAFKA_* env vars. The broker must advertise the
// address clients use, which is only known after start with random port
// mapping, so we bind a host port chosen up front instead.
interface TcStarted {
  stop(): Promise<unknown>;
}
interface TcContainer {
  withExposedPorts(...ports: { container: number; host: number }[]): TcContainer;
  withEnvironment(env: Record<string, string>): TcContainer;
  withWaitStrategy(w: unknown): TcContainer;
  withStartupTimeout(ms: number): TcContainer;
  start(): Promise<TcStarted>;
}
interface TcModule {
  getContainerRuntimeClient(): Promise<{ info: { containerRuntime: { host: string } } }>;
  GenericContainer: new (image: string) => TcContainer;
  Wait: { forLogMessage(m: RegExp): unknown };
}

// The apache/kafka image maps KAFKA_FOO_BAR to foo.bar ('_' is written '__', '-' '___').
const toKafkaEnv = (props: Record<string, string | number | boolean>): Record<string, string> =>
  Object.fromEntries(
    Object.entries(props).map(([k, v]) => ['KAFKA_' + k.replace(/_/g, '__').replace(/-/g, '___').replace(/\./g, '_').toUpperCase(), String(v)]),
  );

async function startWithTestcontainers(opts: StartKafkaOptions): Promise<ResolvedKafka | undefined> {
  const moduleName = 'testcontainers';
  const tc = (await import(moduleName).catch(() => undefined)) as TcModule | undefined;
  if (!tc?.getContainerRuntimeClient || !tc.GenericContainer) return undefined;
  let host: string;
  try {
    host = (await tc.getContainerRuntimeClient()).info.containerRuntime.host; // throws without Docker
  } catch {
    return undefined;
  }
  const hostPort = await freePort(); // free here; assumed free on the Docker host too
  const container = await new tc.GenericContainer(process.env['KAFKA_TEST_IMAGE'] ?? 'apache/kafka:3.9.1')
    .withExposedPorts({ container: 9092, host: hostPort })
    .withEnvironment(
      toKafkaEnv({
        'process.roles': 'broker,controller',
        'node.id': 1,
        'controller.quorum.voters': '1@localhost:9093',
        'controller.listener.names': 'CONTROLLER',
        listeners: 'PLAINTEXT://0.0.0.0:9092,CONTROLLER://localhost:9093',
        'advertised.listeners': `PLAINTEXT://${host}:${hostPort}`,
        'listener.security.protocol.map': 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
        'log.dirs': '/tmp/kraft-combined-logs',
        ...brokerSettings(opts),
      }),
    )
    .withWaitStrategy(tc.Wait.forLogMessage(/Kafka Server started/))
    .withStartupTimeout(opts.readyTimeoutMs ?? 120_000)
    .start();
  const brokers = [`${host}:${hostPort}`];
  try {
    const deadline = Date.now() + 30_000;
    while (!(await adminAnswers(brokers))) {
      if (Date.now() > deadline) throw new Error(`kafka container on ${brokers[0]} does not answer admin calls`);
      await sleep(200);
    }
    if (opts.warmUp ?? true) await warmUpCoordinators(brokers);
  } catch (err) {
    await container.stop();
    throw err;
  }
  return { brokers, stop: async () => void (await container.stop()), source: 'testcontainers' };
}

// ---------------------------------------------------------------- resolveKafka

/**
 * A broker for the tests, from the first source that works:
 * 1. KAFKA_BROKERS (comma-separated host:port; stop() does nothing),
 * 2. the local broker from the Maven jars (fetched first if stale/missing and mvn exists),
 * 3. testcontainers, where a Docker engine answers.
 */
export async function resolveKafka(opts: StartKafkaOptions = {}): Promise<ResolvedKafka> {
  const env = process.env['KAFKA_BROKERS']?.trim();
  if (env) {
    const brokers = env.split(',').map((b) => b.trim()).filter(Boolean);
    return { brokers, stop: async () => undefined, source: 'env:KAFKA_BROKERS' };
  }

  const jarsDir = opts.jarsDir ?? defaultJarsDir();
  const java = opts.java ?? javaBin();
  let fetchFailure = '';
  if (commandWorks(java, ['-version'])) {
    // Refresh a missing or stale cache when we can; a stale one still runs.
    if (opts.jarsDir === undefined && !jarsAreCurrent(jarsDir) && commandWorks('mvn', ['-v'])) {
      const script = fetchScript();
      const r = spawnSync('bash', [script], { stdio: ['ignore', 2, 2] }); // progress to stderr
      if (r.status !== 0) {
        fetchFailure = `\n(${script} failed with exit ${r.status}; see its output above)`;
        process.stderr.write(`kafka broker: ${script} failed${hasJars(jarsDir) ? ', using the jars already in ' + jarsDir : ''}\n`);
      }
    }
    if (hasJars(jarsDir)) {
      const k = await startKafka({ ...opts, jarsDir, java });
      return { brokers: k.brokers, stop: k.stop, source: 'local-jars' };
    }
  }

  const tc = await startWithTestcontainers(opts);
  if (tc) return tc;

  throw new Error(
    'No Kafka broker for the integration tests. Provide one of:\n' +
      '  - KAFKA_BROKERS=host:port[,host:port] pointing at a running broker;\n' +
      '  - java (11+; tested with 17) and mvn on PATH: the tests then run Kafka from Maven Central jars\n' +
      '    (fetch them ahead of time with scripts/kafka/fetch-jars.sh);\n' +
      '  - a Docker engine and the (optional) testcontainers package installed.' +
      fetchFailure,
  );
}

// ---------------------------------------------------------------- topics

/**
 * Creates `name` with `partitions` partitions (replication 1) and waits until
 * every partition has a leader, so the first produce does not race leader
 * election.
 */
export async function createTopic(brokers: string[], name: string, partitions: number, timeoutMs = 30_000): Promise<void> {
  const kafka = new Kafka({ clientId: 'onceonly-admin', brokers, logLevel: logLevel.WARN });
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic: name, numPartitions: partitions, replicationFactor: 1 }], waitForLeaders: true });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const { topics } = await admin.fetchTopicMetadata({ topics: [name] });
        const parts = topics[0]?.partitions ?? [];
        if (parts.length === partitions && parts.every((p) => p.leader >= 0)) return;
      } catch {
        // UNKNOWN_TOPIC_OR_PARTITION right after create: metadata not propagated yet
      }
      if (Date.now() > deadline) throw new Error(`createTopic: ${name} has no leader for every partition after ${timeoutMs} ms`);
      await sleep(100);
    }
  } finally {
    await admin.disconnect();
  }
}
