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
 * A header value as a consumer may receive it. Kafka allows a null header value (`kcat -H name`, the
 * Java client's `headers().add(name, null)`): kafkajs then hands over `null`, which its `IHeaders` omits.
 */
export type HeaderValue = Buffer | string | null | undefined;

/** Message headers as a consumer receives them: kafkajs' `IHeaders`, plus null values. */
export type HeadersLike = Readonly<Record<string, HeaderValue | readonly HeaderValue[]>>;

/**
 * Reads a header as text. Missing, or only null values → `ID_MISSING`; bytes that are not UTF-8, or a
 * header repeated with different values (a null among them counts as different) → `ID_INVALID`.
 * Length and characters are checked later by the processor.
 * @throws {InvalidIdError}
 */
export function readHeaderId(headers: HeadersLike | IHeaders | undefined, name: string): string {
  const raw: HeaderValue | readonly HeaderValue[] = headers?.[name];
  // The usual case, one header value: no arrays.
  if (typeof raw === 'string') return raw;
  if (raw !== undefined && raw !== null && !Array.isArray(raw)) return decode(raw as Buffer, name);
  const entries: readonly HeaderValue[] = Array.isArray(raw) ? raw : [raw as HeaderValue];
  const present = entries.filter((value): value is Buffer | string => value !== undefined && value !== null);
  if (present.length === 0) {
    throw new InvalidIdError('ID_MISSING', `Kafka header "${name}" (the message ID) is missing or has no value`);
  }
  if (present.length < entries.length) {
    throw new InvalidIdError('ID_INVALID', `Kafka header "${name}" appears ${entries.length} times, ${entries.length - present.length} of them without a value`);
  }
  const values = present.map((value) => decode(value, name));
  if (values.some((value) => value !== values[0])) {
    throw new InvalidIdError('ID_INVALID', `Kafka header "${name}" appears ${values.length} times with different values`);
  }
  return values[0]!;
}

function decode(value: Buffer | string, name: string): string {
  if (typeof value === 'string') return value;
  // Anything else a client library might hand over (it is typed as Buffer, but arrives from outside).
  if (!ArrayBuffer.isView(value)) throw new InvalidIdError('ID_INVALID', `Kafka header "${name}" is neither bytes nor text`);
  const view = value as ArrayBufferView;
  const bytes = Buffer.isBuffer(view) ? view : Buffer.from(view.buffer, view.byteOffset, view.byteLength);
  // ASCII (every stamped ID) needs no UTF-8 decoder: its bytes are its characters.
  if (isAscii(bytes)) return bytes.toString('latin1');
  try {
    return utf8.decode(value);
  } catch {
    throw new InvalidIdError('ID_INVALID', `Kafka header "${name}" is not valid UTF-8 (${value.byteLength} bytes)`);
  }
}

function isAscii(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i]! > 0x7f) return false;
  return true;
}

/** The ID of `message` from `source`. @throws {InvalidIdError} for a missing or undecodable header. */
export function messageId(source: IdSource, header: string, message: KafkaMessage, topic: string, partition: number): unknown {
  if (source === 'header') return readHeaderId(message.headers, header);
  if (source === 'offset') return `${topic}/${partition}/${message.offset}`;
  return source(message, { topic, partition });
}
