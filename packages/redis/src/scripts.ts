import { readFileSync } from 'node:fs';
import type { Cluster, Redis } from 'ioredis';

/**
 * The Lua scripts, one file per transition in `./scripts/<name>-<numKeys>.lua` (`-n`: any number of
 * keys, passed first). Each is registered with ioredis `defineCommand` under a versioned name, so
 * ioredis sends EVALSHA and reloads the script by itself after a NOSCRIPT (server restart, failover,
 * SCRIPT FLUSH).
 *
 * Bump {@link SCRIPT_VERSION} whenever a script changes: a connection shared by two versions of this
 * package must never run one version's script under the other's name.
 *
 * Version 3: records are compact strings (see ./scripts/includes/record.lua); hashes written by
 * version 2 are still read, and replaced by strings when next written. Claims check the scope's epoch.
 * Version 4: batch claims and completions pass the lease and the window once per call, and a batch's
 * fingerprints in one argument (records are unchanged).
 */
export const SCRIPT_VERSION = 4;

interface ScriptDefinition {
  /** File name without `.lua`. */
  readonly file: string;
  /** Fixed number of keys, or undefined when the caller passes it first (batch scripts). */
  readonly numberOfKeys: number | undefined;
}

const definitions = {
  claim: { file: 'claim-2', numberOfKeys: 2 },
  claimMany: { file: 'claim-n', numberOfKeys: undefined },
  extend: { file: 'extend-1', numberOfKeys: 1 },
  extendMany: { file: 'extend-n', numberOfKeys: undefined },
  complete: { file: 'complete-1', numberOfKeys: 1 },
  completeMany: { file: 'complete-n', numberOfKeys: undefined },
  release: { file: 'release-1', numberOfKeys: 1 },
  releaseMany: { file: 'release-n', numberOfKeys: undefined },
  fail: { file: 'fail-1', numberOfKeys: 1 },
  get: { file: 'get-1', numberOfKeys: 1 },
  claimManyMarked: { file: 'claim-marked-n', numberOfKeys: undefined },
  completeManyMarked: { file: 'complete-marked-n', numberOfKeys: undefined },
} as const satisfies Record<string, ScriptDefinition>;

export type ScriptName = keyof typeof definitions;

/** The ioredis command name of a script, e.g. `onceonly_claim_many_v1`. */
export function commandName(name: ScriptName): string {
  return `onceonly_${name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}_v${SCRIPT_VERSION}`;
}

export const COMMAND_NAMES: Readonly<Record<ScriptName, string>> = Object.fromEntries(
  Object.keys(definitions).map((name) => [name, commandName(name as ScriptName)]),
) as Record<ScriptName, string>;

// `--- @include "name"` lines pull in ./scripts/includes/<name>.lua, so shared per-key logic is written once.
const INCLUDE = /^--- @include "([a-z0-9-]+)"$/gm;

function readScript(path: string): string {
  return readFileSync(new URL(`./scripts/${path}.lua`, import.meta.url), 'utf8');
}

/** A script's source with its includes expanded. */
export function loadScript(file: string): string {
  return readScript(file).replace(INCLUDE, (_line, include: string) => readScript(`includes/${include}`).trimEnd());
}

let sources: Readonly<Record<ScriptName, string>> | undefined;

/** Script sources with their includes expanded. Read from disk once per process, on first use. */
export function scriptSources(): Readonly<Record<ScriptName, string>> {
  sources ??= Object.fromEntries(
    Object.entries(definitions).map(([name, definition]) => [name, loadScript(definition.file)]),
  ) as Record<ScriptName, string>;
  return sources;
}

/** A script argument: text, a number, or bytes (a record's fingerprint). */
export type ScriptArg = string | number | Buffer;

/** A script command as ioredis defines it on a client or pipeline. */
export type ScriptCommand = (...args: ScriptArg[]) => Promise<unknown>;

/**
 * Defines the scripts on `client` unless this connection already has them (another store, or an
 * earlier one, on the same client). ioredis keeps custom commands per client object, and its
 * pipelines copy them.
 */
export function registerScripts(client: Redis | Cluster): void {
  const target = client as unknown as Record<string, unknown>;
  const all = scriptSources();
  for (const name of Object.keys(definitions) as ScriptName[]) {
    const command = COMMAND_NAMES[name];
    if (typeof target[command] === 'function') continue;
    const { numberOfKeys } = definitions[name];
    client.defineCommand(
      command,
      numberOfKeys === undefined ? { lua: all[name] } : { lua: all[name], numberOfKeys },
    );
  }
}
