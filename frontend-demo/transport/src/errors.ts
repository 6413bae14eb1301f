import type { Tier } from './options.js';

/** The connection failed or stalled; the request can be repeated (after a pause). */
export class RetryableError extends Error {
  override name = 'RetryableError';
}

/** A response that cannot be parsed (bad JSON, a chunk without offset): retried a few
 * times, then given up. */
export class InvalidResponse extends RetryableError {
  override name = 'InvalidResponse';
}

/**
 * The server decided (an HTTP 4xx, an `error` frame, a provider refusal): repeating the
 * request cannot help, so the stream errors with this. `message` is what the server said.
 */
export class ServerError extends Error {
  override name = 'ServerError';

  constructor(
    message: string,
    readonly statusCode?: number,
    readonly responseBody?: string,
  ) {
    super(message);
  }
}

/** This tier does not work on this network (upgrade refused, responses buffered). */
export class TierUnusable extends Error {
  override name = 'TierUnusable';

  constructor(
    readonly tier: Tier,
    message: string,
  ) {
    super(message);
  }
}

/** What a fetch rejects with when its signal fires; Chat treats `AbortError` as a stop. */
export function abortError(): Error {
  const error = new Error('The chat request was aborted.');
  error.name = 'AbortError';
  return error;
}
