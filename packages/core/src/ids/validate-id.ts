import { InvalidIdError } from '../errors.js';

/** Default upper bound of an ID's UTF-8 length, in bytes. */
export const DEFAULT_MAX_ID_BYTES = 256;

// C0 controls, DEL and C1 controls: they break logs and headers and are never a sensible ID.
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Checks that `id` is a usable message ID and returns it typed as a string.
 * Rules: a string, non-empty, at most `maxBytes` bytes of UTF-8, no control characters, and
 * well-formed Unicode (a lone surrogate has no UTF-8 form, so two such IDs could collide in a store).
 * Any other character is allowed: stores escape or hash IDs into their key space.
 *
 * @throws {InvalidIdError} with code `ID_MISSING`, `ID_INVALID` or `ID_TOO_LONG`.
 * @example
 * validateId(job.data.messageId, { label: 'job data messageId' });
 */
export function validateId(id: unknown, options: { maxBytes?: number; label?: string } = {}): string {
  const label = options.label ?? 'message ID';
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_ID_BYTES;
  if (id === undefined || id === null) {
    throw new InvalidIdError('ID_MISSING', `${label} is missing`);
  }
  if (typeof id !== 'string') {
    throw new InvalidIdError('ID_INVALID', `${label} must be a string, got ${describeType(id)}`);
  }
  if (id.length === 0) {
    throw new InvalidIdError('ID_MISSING', `${label} is empty`);
  }
  // One UTF-16 unit is at most 3 UTF-8 bytes, so most IDs skip the byte count.
  if (id.length > maxBytes || (id.length * 3 > maxBytes && Buffer.byteLength(id, 'utf8') > maxBytes)) {
    throw new InvalidIdError(
      'ID_TOO_LONG',
      `${label} is ${Buffer.byteLength(id, 'utf8')} bytes of UTF-8; the limit is ${maxBytes}`,
    );
  }
  if (CONTROL_CHARS.test(id)) {
    throw new InvalidIdError('ID_INVALID', `${label} contains a control character (e.g. a newline)`);
  }
  if (!id.isWellFormed()) {
    throw new InvalidIdError('ID_INVALID', `${label} contains a lone surrogate (not valid Unicode)`);
  }
  return id;
}

function describeType(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Uint8Array) return 'bytes';
  return typeof value;
}
