// What the service launchers (Redis, PostgreSQL, Kafka) share: free ports, executables, and the
// watchdog shell that stops a server when the process that started it dies.
import type { ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { createServer } from 'node:net';

/** A free TCP port on 127.0.0.1: listen on port 0, read the port, release it. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

export function executable(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The watchdog: `sh -c <script> sh <binary> <args…>` starts the server in the background, prints its
 * pid, then reads its stdin (a pipe from this process) until EOF and stops the server with `signal`.
 * If this process dies in any way, even SIGKILL, the pipe closes and the server goes with it. The
 * background job's own stdin is /dev/null (no job control).
 */
export function watchdogScript(signal: 'TERM' | 'INT'): string {
  return `bin=$1; shift; "$bin" "$@" & pid=$!; echo "$pid"; while read -r _; do :; done; kill -${signal} "$pid" 2>/dev/null; wait "$pid"`;
}

/** The server's pid, the watchdog's first line of output. */
export function watchdogPid(child: ChildProcess, name: string): Promise<number> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString();
      const newline = buffered.indexOf('\n');
      if (newline < 0) return;
      child.stdout!.off('data', onData);
      const pid = Number(buffered.slice(0, newline).trim());
      if (Number.isInteger(pid) && pid > 0) resolve(pid);
      else reject(new Error(`watchdog printed no pid: ${buffered}`));
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${name} watchdog exited with ${String(code)}`)));
  });
}
