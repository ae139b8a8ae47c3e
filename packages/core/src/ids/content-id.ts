import { createHash } from 'node:crypto';
import { canonicalJson } from './canonical-json.js';
import { FingerprintError } from '../errors.js';

/**
 * A deterministic ID from a payload: SHA-256 of its canonical JSON (key order does not matter), as
 * 43 characters of base64url. Bytes and strings are hashed as they are. An optional namespace keeps
 * equal payloads of different kinds apart.
 *
 * @throws {FingerprintError} when the payload is not representable as JSON.
 * @example
 * const messageId = contentId({ orderId: 42, action: 'refund' }, { namespace: 'payments' });
 */
export function contentId(payload: unknown, options: { namespace?: string } = {}): string {
  const hash = createHash('sha256');
  if (options.namespace !== undefined) hash.update(`${options.namespace.length}:${options.namespace}:`);
  return hashPayload(hash, payload).digest('base64url');
}

/** The fingerprint kept on a record to spot "same ID, different payload": 22 characters of base64url. */
export function fingerprintOf(payload: unknown): string {
  return hashPayload(createHash('sha256'), payload).digest('base64url').slice(0, 22);
}

function hashPayload(hash: ReturnType<typeof createHash>, payload: unknown) {
  if (payload instanceof Uint8Array) return hash.update('b').update(payload);
  if (typeof payload === 'string') return hash.update('s').update(payload);
  let text: string;
  try {
    text = canonicalJson(payload);
  } catch (error) {
    throw new FingerprintError(`payload cannot be hashed: ${(error as Error).message}`, { cause: error });
  }
  return hash.update('j').update(text);
}
