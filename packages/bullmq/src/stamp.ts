import { contentId, DEFAULT_MAX_ID_BYTES, InvalidOptionsError, uuidv7, validateId } from '@onceonly/core';

/** Where a job's message ID lives: a reserved property of `job.data`. */
export const DEFAULT_STAMP_KEY = 'onceonlyId';

/** How a producer chooses a job's message ID. */
export interface StampOptions {
  /**
   * The ID: a UUIDv7 (`'uuidv7'`, the default), a content ID of the data (`'content'`: the same data
   * always gets the same ID, so re-adding it is recognised), or a business key (any other string).
   */
  id?: 'uuidv7' | 'content' | (string & {});
  /** The property of `job.data` that holds the ID. @defaultValue 'onceonlyId' */
  key?: string;
  /**
   * Also use the ID as BullMQ's `jobId`, so BullMQ itself drops a re-add while the first job still exists.
   * onceonly's record covers the rest of the window (after the first job is removed) and consumer-side
   * redeliveries. @defaultValue false
   */
  jobId?: boolean;
  /**
   * Upper bound of an ID's UTF-8 length, checked here so a job the worker would refuse is never added.
   * Keep it equal to the worker's `maxIdBytes`. @defaultValue 256 (the worker's default)
   */
  maxIdBytes?: number;
  /**
   * Adds the producer's trace context to the job (`addStamped` / `addBulkStamped`): called with an
   * empty carrier, whose JSON goes into `opts.telemetry.metadata`, where BullMQ's own telemetry keeps
   * it too (not into the data, which the worker fingerprints). `injectTraceContext` of
   * `@onceonly/otel` fills it. Options that already carry metadata keep it. @defaultValue none
   */
  inject?: (carrier: Record<string, unknown>) => void;
}

/** A job's data as BullMQ carries it: JSON. Stamping needs a plain object to put the ID in. */
export type JobData = Record<string, unknown>;

function isPlainObject(value: unknown): value is JobData {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function checkKey(key: string): string {
  if (typeof key !== 'string' || key.length === 0) throw new InvalidOptionsError('"key" must be a non-empty string');
  return key;
}

/** The same bounds as the processor's `maxIdBytes` option. */
function checkMaxIdBytes(value: number | undefined): number {
  if (value === undefined) return DEFAULT_MAX_ID_BYTES;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 4096) {
    throw new InvalidOptionsError(`"maxIdBytes" must be an integer from 1 to 4096, got ${JSON.stringify(value)}`);
  }
  return value;
}

/**
 * Returns `data` with a message ID under `key` (a copy; `data` is not changed). Data that already carries
 * an ID keeps it, so stamping twice (e.g. a retried `add`) never changes a job's identity; that ID is
 * checked as the worker checks it (a string, non-empty, at most `maxIdBytes` bytes, no control
 * characters), so a job the worker could only fail is refused here, before it reaches the queue.
 *
 * @throws {InvalidOptionsError} when `data` is not a plain object (wrap it: `{ value: data }`), or an option is wrong.
 * @throws {InvalidIdError} when the ID the data carries, or a business key, is not a valid ID.
 */
export function stamp<T extends JobData>(data: T, options: StampOptions = {}): T & Record<string, string> {
  const key = checkKey(options.key ?? DEFAULT_STAMP_KEY);
  const maxBytes = checkMaxIdBytes(options.maxIdBytes);
  if (!isPlainObject(data)) {
    throw new InvalidOptionsError(
      `job data must be a plain object to carry the "${key}" stamp, got ${Array.isArray(data) ? 'an array' : data === null ? 'null' : typeof data}; wrap it (e.g. { value })`,
    );
  }
  const existing = data[key];
  if (existing !== undefined) {
    validateId(existing, { maxBytes, label: `job data "${key}"` });
    return data as T & Record<string, string>;
  }
  return { ...data, [key]: newId(data, options.id, maxBytes) };
}

function newId(data: JobData, source: StampOptions['id'], maxBytes: number): string {
  if (source === undefined || source === 'uuidv7') return uuidv7();
  if (source === 'content') return contentId(data);
  return validateId(source, { maxBytes, label: 'business key' });
}

/** Reads the stamp of a job's data, or `undefined` when there is none. */
export function readStamp(data: unknown, key: string = DEFAULT_STAMP_KEY): unknown {
  return isPlainObject(data) ? data[key] : undefined;
}
