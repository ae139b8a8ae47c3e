import { StoreUnavailableError } from '@onceonly/core';

/**
 * Wraps whatever ioredis rejected with (connection closed, retries exhausted, offline queue disabled,
 * timeout, a Redis error reply such as OOM or READONLY) into a retriable `StoreUnavailableError`,
 * keeping the original as `cause`.
 *
 * The message never carries payload data: for an error reply only its code (the first word) is kept,
 * because some replies echo a command's arguments, which hold keys and results. Connection errors
 * from the client name no arguments, so their message is kept.
 */
export function storeUnavailable(operation: string, error: unknown): StoreUnavailableError {
  return new StoreUnavailableError(`Redis store unavailable during ${operation}: ${describe(error)}`, { cause: error });
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return 'non-error value thrown';
  if (error.name === 'ReplyError') {
    const code = /^[A-Z][A-Z_-]*/.exec(error.message)?.[0] ?? 'ERR';
    return `Redis replied with an error (${code})`;
  }
  // Bounded: a message is for people, and a long one is never useful here.
  const message = error.message.length > 200 ? `${error.message.slice(0, 200)}…` : error.message;
  return `${error.name}: ${message}`;
}
