// Makes `npm test` work on a fresh machine: checks that every service the integration tests need can be
// found (the same sources test/support looks for), installs what is missing where it can (Debian or
// Ubuntu, as root: apt-get), and otherwise fails at once with the command to run.
// Plain Node, no dependencies. `npm test` runs it after scripts/ensure-deps.mjs, before turbo.
//
// Each service is an entry of SERVICES: `found()` says how the tests will get it (or undefined),
// `apt()` lists the Debian packages still needed, `after` runs once those are installed (fetch, stop
// the packaged daemon, build), `manual()` is what to tell someone who has to do it by hand. Besides
// servers, the Kafka suites need Confluent's Kafka client built for the running Node (see below).
// Set ONCEONLY_NO_INSTALL=1 to only check, never install.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { homedir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const log = (line) => process.stdout.write(`services: ${line}\n`);

// ------------------------------------------------------------------------------------------ probes

/** The first executable `name` on PATH or in `extraDirs`. */
function binary(name, extraDirs = []) {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), ...extraDirs]) {
    if (!dir) continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not here
    }
  }
  return undefined;
}

/** True when `command args` starts and exits 0. */
const works = (command, args) => spawnSync(command, args, { stdio: 'ignore', timeout: 30_000 }).status === 0;

// Printed without any password a URL carries.
const envVar = (name) => (process.env[name]?.trim() ? `${name}=${process.env[name].trim().replace(/\/\/[^@/]*@/, '//***@')}` : undefined);

/** testcontainers (an optional dependency) with a Docker engine that answers. */
let dockerAnswer;
async function docker() {
  dockerAnswer ??= (async () => {
    if (!existsSync(join(root, 'node_modules', 'testcontainers', 'package.json'))) return undefined;
    if (process.env.DOCKER_HOST) return `testcontainers (DOCKER_HOST=${process.env.DOCKER_HOST})`;
    for (const socket of ['/var/run/docker.sock', join(homedir(), '.docker', 'run', 'docker.sock')]) {
      if (existsSync(socket) && (await pingDocker(socket))) return `testcontainers (Docker at ${socket})`;
    }
    return undefined;
  })();
  return dockerAnswer;
}

function pingDocker(socketPath) {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/_ping', timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

// Kafka: mirrors test/support/kafka/broker.ts (java, and the jars scripts/kafka/fetch-jars.sh fetches).
const java = () => (process.env.JAVA_HOME ? join(process.env.JAVA_HOME, 'bin', 'java') : binary('java'));
const javaWorks = () => {
  const path = java();
  return path !== undefined && works(path, ['-version']);
};
const jarsDir = join(root, '.cache', 'kafka-jars');
const hasJars = () => existsSync(jarsDir) && readdirSync(jarsDir).some((f) => /^kafka_2\.13-.*\.jar$/.test(f));
const jarsFresh = () => {
  if (!hasJars() || !existsSync(join(jarsDir, '.stamp'))) return false;
  const want = createHash('sha256').update(readFileSync(join(root, 'scripts', 'kafka', 'pom.xml'))).digest('hex');
  return readFileSync(join(jarsDir, '.stamp'), 'utf8').trim() === want;
};

// ---------------------------------------------------------------------------------------- services

const REDIS_DIRS = ['/usr/bin', '/usr/sbin', '/usr/local/bin']; // as test/support/redis-server.ts
// As test/support/postgres-server.ts: initdb and postgres on PATH or under /usr/lib/postgresql/<version>/bin.
const postgresDirs = () =>
  existsSync('/usr/lib/postgresql')
    ? readdirSync('/usr/lib/postgresql')
        .filter((v) => /^\d+$/.test(v))
        .sort((a, b) => Number(b) - Number(a))
        .map((v) => join('/usr/lib/postgresql', v, 'bin'))
    : [];

const SERVICES = [
  {
    name: 'Redis',
    found: async () => envVar('REDIS_URL') ?? redisBinary() ?? (await docker()),
    apt: () => ['redis-server'],
    // The package starts a daemon on port 6379; the tests start their own servers on free ports.
    after: () => stopDaemon('redis-server'),
    manual: () => [
      'sudo apt-get install redis-server        (Debian/Ubuntu; brew install redis on macOS)',
      'or: REDIS_URL=redis://host:port npm test  (a Redis you run)',
    ],
  },
  {
    name: 'Kafka',
    found: async () =>
      envVar('KAFKA_BROKERS') ??
      (javaWorks() && (jarsFresh() || (hasJars() && !binary('mvn'))) ? `broker from the jars in .cache/kafka-jars (${java()})` : undefined) ??
      (await docker()),
    apt: () => kafkaPackages(),
    after: () => run('Kafka broker jars from Maven Central (scripts/kafka/fetch-jars.sh, about 50 MB, first run only)', 'bash', [join(root, 'scripts', 'kafka', 'fetch-jars.sh')]),
    manual: () => [
      `${kafkaPackages().length ? `sudo apt-get install ${kafkaPackages().join(' ')} && ` : ''}bash scripts/kafka/fetch-jars.sh   (java 11+ and maven; the tests run the broker from the jars)`,
      'or: KAFKA_BROKERS=host:port npm test  (a broker you run)',
    ],
  },
  {
    name: "Confluent's Kafka client",
    found: async () => confluentClient(),
    apt: () => confluentBuildPackages(),
    after: () => buildConfluent(),
    manual: () => [
      ...(confluentBuildPackages().length ? [`sudo apt-get install ${confluentBuildPackages().join(' ')}   (Debian/Ubuntu: what the build needs)`] : []),
      existsSync(join(confluentDir, 'package.json'))
        ? `CKJS_LINKING=dynamic npm rebuild ${CONFLUENT} --build-from-source   (builds it for the node on PATH, about 2 min)`
        : `CKJS_LINKING=dynamic npm install   (npm dropped ${CONFLUENT} after a failed build: builds it from source, about 2 min)`,
    ],
  },
  {
    name: 'PostgreSQL',
    found: async () => envVar('DATABASE_URL') ?? postgresBinaries() ?? (await docker()),
    // Also creates the `postgres` user that the tests run the server as when they run as root.
    apt: () => ['postgresql'],
    // The package starts a cluster on port 5432; the tests start their own throwaway clusters.
    after: () => stopDaemon('postgresql'),
    manual: () => [
      'sudo apt-get install postgresql         (Debian/Ubuntu; brew install postgresql@16 on macOS)',
      'or: DATABASE_URL=postgres://user@host:port/db npm test  (a PostgreSQL you run)',
    ],
  },
];

// Confluent's KafkaJS-compatible client, an optional dependency of the test workspace: the Kafka
// suites run against it as well as kafkajs (test/kafka/clients.ts). Its install script downloads a
// prebuilt binary for the running Node's ABI, else builds from source with node-gyp (nan, not N-API:
// a build loads on one Node version only). CKJS_LINKING=dynamic makes that build compile its bundled
// librdkafka against the system's OpenSSL and zlib; without it the build downloads them and fails
// offline, and npm then drops the package. So: when it is missing or does not load on this Node
// (node_modules built for another one, as in CI's second run), build it here for this Node.
const CONFLUENT = '@confluentinc/kafka-javascript';
const confluentDir = join(root, 'node_modules', '@confluentinc', 'kafka-javascript');

function confluentClient() {
  const script = `const k = require(${JSON.stringify(CONFLUENT)}); process.stdout.write(require(${JSON.stringify(`${CONFLUENT}/package.json`)}).version + ', librdkafka ' + k.librdkafkaVersion)`;
  const probe = spawnSync(process.execPath, ['-e', script], { cwd: join(root, 'test'), encoding: 'utf8', timeout: 30_000 });
  return probe.status === 0 ? `${CONFLUENT} ${probe.stdout} (loads on node ${process.version})` : undefined;
}

/** What the source build needs: a C++20 compiler and make, python3 for node-gyp, OpenSSL and zlib headers for librdkafka. */
function confluentBuildPackages() {
  return [
    ...(binary('g++') && binary('make') ? [] : ['build-essential']),
    ...(binary('python3') ? [] : ['python3']),
    ...(existsSync('/usr/include/openssl/ssl.h') ? [] : ['libssl-dev']),
    ...(existsSync('/usr/include/zlib.h') ? [] : ['zlib1g-dev']),
  ];
}

/** Builds it for the running Node: `npm rebuild` when npm installed it, else `npm install` (npm dropped it after a failed build). */
function buildConfluent() {
  // node-gyp compiles against the headers of `nodedir` (an npmrc may pin another Node's): this Node's own.
  const prefix = dirname(dirname(process.execPath));
  const env = {
    CKJS_LINKING: 'dynamic',
    PATH: [dirname(process.execPath), process.env.PATH].filter(Boolean).join(delimiter),
    ...(existsSync(join(prefix, 'include', 'node', 'node.h')) ? { npm_config_nodedir: prefix } : {}),
  };
  // Compiler errors and node-gyp's verdict; not the warnings, nor the failed prebuilt download.
  const filter = (line) => /: (fatal )?error: |gyp ERR! (stack Error|not ok)|^npm error /.test(line);
  const args = existsSync(join(confluentDir, 'package.json'))
    ? ['rebuild', CONFLUENT, '--build-from-source', '--foreground-scripts']
    : ['install', '--no-save', '--no-audit', '--no-fund', '--foreground-scripts'];
  return run(`building ${CONFLUENT} from source for node ${process.version} (npm ${args[0]}, CKJS_LINKING=dynamic; about 2 min)`, 'npm', args, { env, filter });
}

function postgresBinaries() {
  const initdb = binary('initdb', postgresDirs());
  const postgres = binary('postgres', postgresDirs());
  return initdb && postgres && works(postgres, ['--version']) ? `PostgreSQL server binaries (${dirname(postgres)})` : undefined;
}

function kafkaPackages() {
  return [...(javaWorks() ? [] : ['default-jre-headless']), ...(binary('mvn') ? [] : ['maven'])];
}

function redisBinary() {
  const path = binary('redis-server', REDIS_DIRS);
  return path && works(path, ['--version']) ? `redis-server (${path})` : undefined;
}

// ------------------------------------------------------------------------------------- installing

/** Runs a command, streaming its output; prints a line every 20 s while it is quiet. */
function run(what, command, args, { env, filter } = {}) {
  log(`${what}…`);
  const started = Date.now();
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const tail = [];
    let lastOutput = Date.now();
    const onLine = (line) => {
      tail.push(line);
      if (tail.length > 40) tail.shift();
      if (!filter || filter(line)) {
        process.stdout.write(`  ${line}\n`);
        lastOutput = Date.now();
      }
    };
    for (const stream of [child.stdout, child.stderr]) {
      let buffered = '';
      stream.on('data', (chunk) => {
        buffered += chunk.toString();
        const lines = buffered.split('\n');
        buffered = lines.pop();
        lines.filter((l) => l.trim()).forEach(onLine);
      });
      stream.on('end', () => buffered.trim() && onLine(buffered));
    }
    const ticker = setInterval(() => {
      if (Date.now() - lastOutput >= 20_000) {
        log(`  still working on it (${Math.round((Date.now() - started) / 1000)} s)…`);
        lastOutput = Date.now();
      }
    }, 5_000);
    child.on('error', (error) => {
      clearInterval(ticker);
      reject(error);
    });
    child.on('close', (code) => {
      clearInterval(ticker);
      if (code === 0) {
        log(`  done in ${Math.round((Date.now() - started) / 1000)} s`);
        resolvePromise();
      } else {
        if (filter) tail.forEach((line) => process.stderr.write(`  ${line}\n`));
        reject(new Error(`${command} ${args.join(' ')} exited with ${code}`));
      }
    });
  });
}

// apt-get runs dpkg and maintainer scripts, which expect the system directories on PATH.
const APT_ENV = { DEBIAN_FRONTEND: 'noninteractive', PATH: [process.env.PATH, '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'].filter(Boolean).join(delimiter) };
// apt-get -q still prints a line per download and per package set up: enough to show progress.
const aptProgress = (line) => /^(Get:|Setting up |E: )/.test(line);

async function aptInstall(packages) {
  const aptGet = binary('apt-get', ['/usr/bin']);
  await run('apt-get update', aptGet, ['update', '-q'], { env: APT_ENV, filter: (line) => /^(E:|W:)/.test(line) });
  await run(`installing ${packages.join(' ')} (apt-get)`, aptGet, ['install', '-y', '-q', '--no-install-recommends', ...packages], {
    env: APT_ENV,
    filter: aptProgress,
  });
}

async function stopDaemon(name) {
  // Best effort: without systemd (containers) the package may not have started one at all.
  for (const [command, args] of [
    ['systemctl', ['stop', name]],
    ['service', [name, 'stop']],
  ]) {
    const path = binary(command, ['/usr/sbin', '/sbin', '/usr/bin']);
    if (path && spawnSync(path, args, { stdio: 'ignore', env: { ...process.env, ...APT_ENV }, timeout: 30_000 }).status === 0) {
      log(`stopped the packaged ${name} daemon (the tests start their own servers on free ports)`);
      return;
    }
  }
}

const canApt = () =>
  process.platform === 'linux' && typeof process.getuid === 'function' && process.getuid() === 0 && binary('apt-get', ['/usr/bin']) !== undefined;

// ------------------------------------------------------------------------------------------- main

log(`node ${process.version} (${process.execPath})`);
const missing = [];
for (const service of SERVICES) {
  const how = await service.found();
  if (how) log(`${service.name}: ${how}`);
  else missing.push(service);
}

if (missing.length > 0) {
  const packages = [...new Set(missing.flatMap((service) => service.apt()))];
  const noInstall = process.env.ONCEONLY_NO_INSTALL === '1';
  const installable = !noInstall && (packages.length === 0 || canApt());
  // Without apt-get, still do what needs no package (e.g. fetch the Kafka jars), then say what is left.
  const todo = noInstall ? [] : installable ? missing : missing.filter((service) => service.apt().length === 0);
  let installed = true;
  if (installable && packages.length > 0) {
    installed = await aptInstall(packages).then(
      () => true,
      (error) => (process.stderr.write(`services: ${error.message}\n`), false),
    );
  }
  for (const service of installed ? todo : []) {
    await service.after?.().catch((error) => process.stderr.write(`services: ${service.name}: ${error.message}\n`));
  }
  const left = [];
  for (const service of missing) {
    const how = await service.found();
    if (how) log(`${service.name}: ${how}`);
    else left.push(service);
  }
  if (left.length > 0) {
    const why = noInstall
      ? 'ONCEONLY_NO_INSTALL=1 is set, so nothing was installed'
      : installable
        ? 'still missing after trying to install it'
        : process.getuid?.() !== 0
          ? 'not running as root, so no package was installed'
          : 'no apt-get here, so no package was installed';
    fail(`The integration tests need ${left.map((s) => s.name).join(' and ')}: not found (${why}).`, left);
  }
}

function fail(message, services) {
  process.stderr.write(
    `\n${message}\nProvide ${services.length > 1 ? 'them' : 'it'}, then run npm test again:\n` +
      services.map((s) => `  ${s.name}:\n${s.manual().map((line) => `    ${line}`).join('\n')}\n`).join('') +
      '  (or a Docker engine: testcontainers then starts the services)\n',
  );
  process.exit(1);
}
