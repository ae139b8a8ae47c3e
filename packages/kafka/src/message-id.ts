import { InvalidIdError } from '@onceonly/core';
import type { IHeaders, KafkaMessage } from 'kafkajs';

/** Where a message's ID comes from. */
export type IdSource =
  /** The stamped header (see `stampMessages`): survives producer retries and replays. */
  | 'header'
  /** `topic/partition/offset`: protects replays and redeliveries, NOT producer retries (a retry gets a new offset). */
  | 'offset'
  /** Your own function of the message, e.g. a business key read from the value. */
  | ((message: KafkaMessage, where: { topic: string; partition: number }) => unknown);

/** Default header that carries a message's ID. */
export const DEFAULT_ID_HEADER = 'onceonly-id';

// Strict: a header that is not valid UTF-8 must fail, not be decoded with replacement characters
// (two different byte strings would then share an ID).
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Reads a header as text. Missing → `ID_MISSING`; bytes that are not UTF-8, or a header repeated with
 * different values → `ID_INVALID`. Length and characters are checked later by the processor.
 * @throws {InvalidIdError}
 */
export function readHeaderId(headers: IHeaders | undefined, name: string): string {
  const raw = headers?.[name];
  if (raw === undefined || (Array.isArray(raw) && raw.length === 0)) {
    throw new InvalidIdError('ID_MISSING', `Kafka header "${name}" (the message ID) is missing`);
  }
  const values = (Array.isArray(raw) ? raw : [raw]).map((value) => decode(value, name));
  if (values.some((value) => value !== values[0])) {
    throw new InvalidIdError('ID_INVALID', `Kafka header "${name}" appears ${values.length} times with different values`);
  }
  return values[0]!;
}

function decode(value: Buffer | string, name: string): string {
  if (typeof value === 'string') return value;
  try {
    return utf8.decode(value);
  } catch {
    throw new InvalidIdError('ID_INVALID', `Kafka header "${name}" is not valid UTF-8 (${value.length} bytes)`);
  }
}

/** The ID of `message` from `source`. @throws {InvalidIdError} for a missing or undecodable header. */
export function messageId(source: IdSource, header: string, message: KafkaMessage, topic: string, partition: number): unknown {
  if (source === 'header') return readHeaderId(message.headers, header);
  if (source === 'offset') return `${topic}/${partition}/${message.offset}`;
  return source(message, { topic, partition });
}
