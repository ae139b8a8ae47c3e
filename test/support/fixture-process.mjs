/* global process */
// What the fixtures that run as their own OS process share (test/bullmq/fixtures/*.mjs,
// test/postgres/fixtures/crash-worker.mjs): their settings from the environment, the lines they
// report on stdout ("READY", "AT <point> <json>", "OUTCOME <json>"), and where they stop dead for the
// parent to SIGKILL them.

export const env = process.env;
/** Where the fixture stops dead (each fixture lists its modes). */
export const mode = env.MODE ?? 'normal';
/** The name the fixture books its effects under. */
export const name = env.NAME ?? `w${process.pid}`;
/** The number in `env[key]`, or `fallback` when it is unset or empty. */
export const num = (key, fallback) => (env[key] ? Number(env[key]) : fallback);
/** One line on stdout. */
export const say = (line) => process.stdout.write(`${line}\n`);
/** Never settles: the process stops here until the parent kills it. */
export const forever = () => new Promise(() => {});

/**
 * The pg pool as a PostgresStore should see it: in the crash-before-commit and crash-after-commit
 * modes, COMMIT on a handler's client (one checked out by `pool.connect()` without a callback) stops
 * the process, before it is sent ("AT before-commit") or once the server committed ("AT after-commit").
 * `pool.query`'s own checkouts (claims and heartbeats) are left alone.
 */
export function stopAtCommit(pool) {
  const connect = pool.connect.bind(pool);
  pool.connect = (callback) => (callback ? connect(callback) : connect().then(wrap));
  const wrap = (client) => {
    if (client.onceonlyWrapped) return client;
    client.onceonlyWrapped = true;
    const query = client.query;
    client.query = function (text, ...rest) {
      if (text === 'COMMIT' && mode === 'crash-before-commit') {
        say(`AT before-commit ${JSON.stringify({ at: Date.now() })}`);
        return forever();
      }
      const answer = query.call(this, text, ...rest);
      if (text !== 'COMMIT' || mode !== 'crash-after-commit') return answer;
      return answer.then(() => {
        say(`AT after-commit ${JSON.stringify({ at: Date.now() })}`);
        return forever();
      });
    };
    return client;
  };
  return pool;
}
