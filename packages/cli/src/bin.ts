#!/usr/bin/env node
// The `onceonly` executable: wires the process to main() and exits with its code.
import { main } from './main.js';

const interrupt = new AbortController();
process.once('SIGINT', () => {
  // First Ctrl-C: stop cleanly (a purge finishes its batch and reports); a second one: stop now.
  interrupt.abort();
  process.once('SIGINT', () => process.exit(130));
});

const code = await main(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  // A getter: touching process.stdin opens it, and only a confirmation prompt needs it.
  get stdin() {
    return process.stdin;
  },
  env: process.env,
  signal: interrupt.signal,
});
process.exitCode = code;
// Output is flushed by a natural exit; should any handle linger (it should not), do not hang on it.
setTimeout(() => process.exit(code), 2_000).unref();
