import {
  InvalidOptionsError,
  parseAdminCountOptions,
  parseAdminListOptions,
  parseAdminPurgeScopeOptions,
  type AdminCountOptions,
  type AdminCounts,
  type AdminEntry,
  type AdminListOptions,
  type AdminPage,
  type AdminPurgeResult,
  type AdminPurgeScopeOptions,
  type AdminRecord,
  type AdminRecordState,
  type AdminStore,
} from '@onceonly/core';
import type { Cluster, Redis } from 'ioredis';
import { storeUnavailable } from './errors.js';
import { decodeKeyPart, type KeyBuilder } from './keys.js';
import type { RedisStoreClient } from './redis-store-options.js';
import { decodeRecordValue } from './record-value.js';
import { loadScript, SCRIPT_VERSION, type ScriptCommand } from './scripts.js';

/**
 * The Redis side of {@link AdminStore}, used by `RedisStore`: operator tools, never on the hot path.
 *
 * - A scope's keys share the prefix `<prefix>:{<scope part>}:`, so `SCAN MATCH <that>*` selects exactly
 *   them (prefix and parts hold no glob characters). `SCAN`, never `KEYS`: the server stays responsive.
 * - On a Cluster the scope lives in one hash slot, so the scan runs on the master that serves the slot
 *   (found from the client's slot table). A slot that migrates during a scan may hide keys from it:
 *   run it again.
 * - Offset marks (`…:hwm:<name>`) share the prefix; they are told apart by the `:` an escaped ID part
 *   never holds, and are neither listed nor counted as records. Nor is the scope's epoch (`…:!epoch`,
 *   see `RedisStore`), which `purgeScope` leaves in place: removing it would make every store that
 *   claims in the scope report a reset.
 * - Records of either layout are read: strings (script version 3) and hashes written by version 0.1.
 * - IDs are read back from their key part (percent-decoding). An ID that was hashed (escaped form
 *   longer than 128 characters) cannot be: its entry has no `id`, only the `#…` key part. The store
 *   does not keep the original ID in the record on purpose: that would cost every claim of a long ID
 *   an extra field and argument on the hot path, and keep business keys the store otherwise never
 *   stores. `inspect` and `purge` by ID work for every ID, hashed or not.
 * - The admin scripts are registered on first use only, under versioned names like the others.
 */
export class RedisAdmin implements AdminStore {
  readonly #client: RedisStoreClient;
  readonly #keys: KeyBuilder;
  readonly #keyOf: (scope: string, id: string) => string;
  #read: ScriptCommand | undefined;
  #count: ScriptCommand | undefined;

  /** `keyOf` is the store's own (validating) key function, so admin keys are exactly the store's. */
  constructor(client: RedisStoreClient, keys: KeyBuilder, keyOf: (scope: string, id: string) => string) {
    this.#client = client;
    this.#keys = keys;
    this.#keyOf = keyOf;
  }

  async inspect(scope: string, id: string): Promise<AdminRecord | undefined> {
    const key = this.#keyOf(scope, id);
    return this.#guard('inspect', async () => (await this.#readRecords([key]))[0]);
  }

  async list(scope: string, options?: AdminListOptions): Promise<AdminPage> {
    const { state, limit, cursor, batchSize } = parseAdminListOptions(options);
    const head = this.#head(scope);
    let { scan, after } = decodeCursor(cursor);
    return this.#guard('list', async () => {
      const node = await this.#scanNode(head);
      const entries: AdminEntry[] = [];
      for (;;) {
        const [next, keys] = await node.scan(scan, 'MATCH', `${head}*`, 'COUNT', batchSize);
        // Sorted, so a page that ends inside this batch can resume after its last key part.
        let parts = splitParts(keys, head).records.sort();
        if (after !== undefined) {
          const from = after;
          parts = parts.filter((part) => part > from);
          after = undefined;
        }
        const records = await this.#readRecords(parts.map((part) => head + part));
        for (let i = 0; i < parts.length; i++) {
          const record = records[i];
          if (record === undefined || (state !== undefined && record.state !== state)) continue;
          const part = parts[i]!;
          const id = decodeKeyPart(part);
          entries.push(id === undefined ? { keyPart: part, record } : { id, keyPart: part, record });
          if (entries.length === limit) {
            if (i < parts.length - 1) return { entries, cursor: `${scan}:${part}` };
            return { entries, cursor: next === '0' ? undefined : next };
          }
        }
        if (next === '0') return { entries, cursor: undefined };
        scan = next;
      }
    });
  }

  async purge(scope: string, id: string): Promise<boolean> {
    const key = this.#keyOf(scope, id);
    return this.#guard('purge', async () => (await this.#client.unlink(key)) > 0);
  }

  async purgeScope(scope: string, options?: AdminPurgeScopeOptions): Promise<AdminPurgeResult> {
    const { dryRun, includeMarks, batchSize, onProgress, signal } = parseAdminPurgeScopeOptions(options);
    const head = this.#head(scope);
    return this.#guard('purgeScope', async () => {
      const node = await this.#scanNode(head);
      let records = 0;
      let marks = 0;
      let scan = '0';
      do {
        if (signal?.aborted) return { records, marks, dryRun, aborted: true };
        const [next, keys] = await node.scan(scan, 'MATCH', `${head}*`, 'COUNT', batchSize);
        const parts = splitParts(keys, head);
        const markKeys = includeMarks ? parts.marks.map((part) => head + part) : [];
        if (dryRun) {
          records += parts.records.length;
          marks += markKeys.length;
        } else {
          // UNLINK answers what it removed, so a key SCAN returns twice or that expired meanwhile is not counted.
          records += await this.#unlink(parts.records.map((part) => head + part), batchSize);
          marks += await this.#unlink(markKeys, batchSize);
        }
        onProgress?.({ records, marks });
        scan = next;
      } while (scan !== '0');
      return { records, marks, dryRun, aborted: false };
    });
  }

  async countByState(scope: string, options?: AdminCountOptions): Promise<AdminCounts> {
    const { batchSize } = parseAdminCountOptions(options);
    const head = this.#head(scope);
    return this.#guard('countByState', async () => {
      const node = await this.#scanNode(head);
      const count = this.#countCommand();
      const totals = [0, 0, 0, 0, 0, 0];
      let marks = 0;
      let scan = '0';
      do {
        const [next, keys] = await node.scan(scan, 'MATCH', `${head}*`, 'COUNT', batchSize);
        const parts = splitParts(keys, head);
        marks += parts.marks.length;
        for (const chunk of chunks(parts.records, MAX_KEYS_PER_CALL)) {
          const reply = await count.call(this.#client, chunk.length, ...chunk.map((part) => head + part));
          if (!Array.isArray(reply) || reply.length !== 6) throw new TypeError('count reply is malformed');
          reply.forEach((n, i) => (totals[i]! += Number(n)));
        }
        scan = next;
      } while (scan !== '0');
      const [inProgress, completed, failed, released, leaseExpired, suspect] = totals as [number, number, number, number, number, number];
      return {
        'in-progress': inProgress,
        completed,
        failed,
        released,
        total: inProgress + completed + failed + released,
        leaseExpired,
        suspect,
        marks,
      };
    });
  }

  #head(scope: string): string {
    if (typeof scope !== 'string' || scope.length === 0) throw new TypeError('RedisStore: scope must be a non-empty string');
    return this.#keys.head(scope);
  }

  /** Runs `work`; validation errors pass through, anything from Redis becomes `StoreUnavailableError`. */
  async #guard<T>(operation: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (error instanceof InvalidOptionsError) throw error;
      throw storeUnavailable(operation, error);
    }
  }

  /** The connection to SCAN on: the client itself, or on a Cluster the master serving the scope's slot. */
  async #scanNode(head: string): Promise<Redis> {
    if ((this.#client as { isCluster?: boolean }).isCluster !== true) return this.#client as Redis;
    const cluster = this.#client as Cluster;
    // Every key of the scope hashes like its head: the hash tag is the scope part.
    const slot = Number(await cluster.call('CLUSTER', 'KEYSLOT', head));
    const nodeKey = cluster.slots[slot]?.[0];
    const node = cluster.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === nodeKey);
    if (node === undefined) throw new Error(`no known master serves hash slot ${slot}`);
    return node;
  }

  async #readRecords(keys: readonly string[]): Promise<(AdminRecord | undefined)[]> {
    const read = this.#readCommand();
    const out: (AdminRecord | undefined)[] = [];
    for (const chunk of chunks(keys, MAX_KEYS_PER_CALL)) {
      const reply = await read.call(this.#client, chunk.length, ...chunk);
      if (!Array.isArray(reply) || reply.length !== 1 + chunk.length * WIDTH) throw new TypeError('read reply is malformed');
      const now = Number(reply[0]);
      for (let i = 0; i < chunk.length; i++) out.push(decodeAdminRecord(reply, 1 + i * WIDTH, now));
    }
    return out;
  }

  async #unlink(keys: readonly string[], batchSize: number): Promise<number> {
    let removed = 0;
    for (const chunk of chunks(keys, batchSize)) removed += await this.#client.unlink(...chunk);
    return removed;
  }

  #readCommand(): ScriptCommand {
    return (this.#read ??= defineAdminScript(this.#client, 'admin_read', 'admin-read-n', true));
  }

  #countCommand(): ScriptCommand {
    return (this.#count ??= defineAdminScript(this.#client, 'admin_count', 'admin-count-n', false));
  }
}

/** Keys per script call: bounds the reply and the time the server spends in one script. */
const MAX_KEYS_PER_CALL = 1000;
/** Values per key in admin-read-n.lua's reply. */
const WIDTH = 2;
const STATES: readonly AdminRecordState[] = ['released', 'in-progress', 'completed', 'failed'];

/**
 * Defines an admin script on the client (once per client, like the store's own scripts). `binary`:
 * the Buffer form, for replies that carry record values.
 */
function defineAdminScript(client: RedisStoreClient, name: string, file: string, binary: boolean): ScriptCommand {
  const command = `onceonly_${name}_v${SCRIPT_VERSION}`;
  const target = client as unknown as Record<string, ScriptCommand | undefined>;
  if (typeof target[command] !== 'function') client.defineCommand(command, { lua: loadScript(file) });
  return target[binary ? `${command}Buffer` : command]!;
}

/**
 * Splits scanned keys into record key parts and mark key parts (`hwm:<name>`). A record part has no
 * `:`, and none starts with `!` (the scope's epoch key, `!epoch`, is neither).
 */
function splitParts(keys: readonly string[], head: string): { records: string[]; marks: string[] } {
  const records = new Set<string>();
  const marks = new Set<string>();
  for (const key of keys) {
    if (!key.startsWith(head)) continue;
    const part = key.slice(head.length);
    if (part.startsWith('hwm:')) marks.add(part);
    else if (part.length > 0 && !part.includes(':') && !part.startsWith('!')) records.add(part);
  }
  return { records: [...records], marks: [...marks] };
}

function* chunks<T>(items: readonly T[], size: number): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}

/** A list cursor: the SCAN cursor of a batch, and the key part to resume after within it, if any. */
function decodeCursor(cursor: string | undefined): { scan: string; after: string | undefined } {
  if (cursor === undefined) return { scan: '0', after: undefined };
  const match = /^(\d+)(?::([^:]+))?$/.exec(cursor);
  if (match === null) throw new InvalidOptionsError('invalid admin list options: "cursor" is not a cursor this store handed out');
  return { scan: match[1]!, after: match[2] };
}

const num = (value: unknown): number | undefined => {
  if (typeof value !== 'string' && typeof value !== 'number') return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
};

/**
 * Decodes one key's 2 values of admin-read-n.lua (the record's value and its PTTL). `undefined` for a
 * missing key or a value that is not a record. Absent values arrive as `null` (RESP2) or `false`
 * (RESP3), so they are read by type.
 */
export function decodeAdminRecord(reply: readonly unknown[], at: number, now: number): AdminRecord | undefined {
  const value = reply[at];
  if (!Buffer.isBuffer(value)) return undefined;
  let stored;
  try {
    stored = decodeRecordValue(value);
  } catch {
    return undefined;
  }
  const state = STATES[stored.state]!;
  const leaseUntil = state === 'in-progress' ? stored.leaseUntil : undefined;
  const pttl = num(reply[at + 1]);
  return {
    state,
    token: stored.token,
    claimedAt: stored.claimedAt,
    updatedAt: stored.updatedAt,
    ...(leaseUntil === undefined ? {} : { leaseUntil }),
    leaseExpired: leaseUntil !== undefined && leaseUntil <= now,
    ...(stored.fingerprint === undefined ? {} : { fingerprint: stored.fingerprint }),
    ...(stored.extra === undefined || state === 'released' || state === 'in-progress' ? {} : state === 'completed' ? { result: stored.extra } : { error: stored.extra }),
    suspect: stored.suspect,
    ...(pttl === undefined || pttl < 0 ? {} : { expiresAt: now + pttl }),
    readAt: now,
  };
}
