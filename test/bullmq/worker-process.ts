import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const FIXTURE = fileURLToPath(new URL('./fixtures/worker.mjs', import.meta.url));

export interface Line {
  kind: string;
  point?: string;
  data: Record<string, unknown>;
}

/**
 * A BullMQ worker running test/bullmq/fixtures/worker.mjs (or another fixture `script` that speaks
 * the same lines) in its own OS process.
 */
export class WorkerProcess {
  readonly lines: Line[] = [];
  readonly child: ChildProcess;
  #waiters: { test: (line: Line) => boolean; resolve: (line: Line) => void }[] = [];
  #stderr = '';

  constructor(env: Record<string, string | number>, script: string = FIXTURE) {
    this.child = spawn(process.execPath, [script], {
      env: { ...process.env, ...Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)])) },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.stderr!.on('data', (chunk: Buffer) => (this.#stderr += chunk.toString()));
    createInterface({ input: this.child.stdout! }).on('line', (text) => this.#onLine(text));
  }

  static async start(env: Record<string, string | number>, script?: string): Promise<WorkerProcess> {
    const worker = new WorkerProcess(env, script);
    await worker.waitFor((line) => line.kind === 'READY', 20_000);
    return worker;
  }

  #onLine(text: string): void {
    const [kind = '', ...rest] = text.split(' ');
    let line: Line;
    if (kind === 'AT') line = { kind, point: rest[0], data: JSON.parse(rest.slice(1).join(' ') || '{}') };
    else if (kind === 'OUTCOME') line = { kind, data: JSON.parse(rest.join(' ')) };
    else line = { kind, data: {} };
    this.lines.push(line);
    this.#waiters = this.#waiters.filter((w) => (w.test(line) ? (w.resolve(line), false) : true));
  }

  /** Resolves with the first line (seen or to come) that passes `test`. */
  waitFor(test: (line: Line) => boolean, timeoutMs = 30_000): Promise<Line> {
    const seen = this.lines.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`worker ${this.child.pid}: no matching line within ${timeoutMs} ms; stderr: ${this.#stderr.slice(-2000)}`)),
        timeoutMs,
      );
      const onExit = (code: number | null) =>
        reject(new Error(`worker ${this.child.pid} exited (${code}) before a matching line; stderr: ${this.#stderr.slice(-2000)}`));
      this.child.once('exit', onExit);
      this.#waiters.push({
        test,
        resolve: (line) => {
          clearTimeout(timer);
          this.child.off('exit', onExit);
          resolve(line);
        },
      });
    });
  }

  at(point: string, timeoutMs?: number): Promise<Line> {
    return this.waitFor((line) => line.kind === 'AT' && line.point === point, timeoutMs);
  }

  outcomes(): Record<string, unknown>[] {
    return this.lines.filter((l) => l.kind === 'OUTCOME').map((l) => l.data);
  }

  /** Writes a line to the process's standard input. */
  send(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  /** SIGSTOP: the process is frozen (timers, heartbeats and all) until {@link resume}. */
  pause(): void {
    this.child.kill('SIGSTOP');
  }

  /** SIGCONT: a paused process goes on where it stopped. */
  resume(): void {
    this.child.kill('SIGCONT');
  }

  /** Resolves once the process has exited (at once if it has). */
  async exited(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    await new Promise((resolve) => this.child.once('exit', resolve));
  }

  /** SIGKILL: the process stops dead, nothing is cleaned up. */
  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGKILL');
    await exited;
  }

  /** SIGTERM: the worker closes cleanly. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}
