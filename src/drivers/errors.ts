import { OnceForeignValueError, RedisUnavailableError } from '../errors.js';
import { withTimeout } from '../timeout.js';

/**
 * Bounds a call on Redis by `timeoutMs` and turns whatever a client throws into our error classes:
 * a timeout or a connection problem becomes RedisUnavailableError (naming the server, never a secret),
 * a WRONGTYPE reply OnceForeignValueError.
 */
export async function bounded<T>(
  call: () => Promise<T>,
  options: { label: string; what: string; timeoutMs: number; lastError?: () => Error | undefined },
): Promise<T> {
  const { label, what, timeoutMs } = options;
  try {
    return await withTimeout(call(), timeoutMs, () => {
      const last = options.lastError?.();
      return new RedisUnavailableError(
        `Redis at ${label} did not answer ${what} within ${timeoutMs} ms (redisTimeoutMs)${last ? `: ${last.message}` : ''}.`,
        { cause: last && safeCause(last) },
      );
    });
  } catch (error) {
    throw translate(error, label, what);
  }
}

export function translate(error: unknown, label: string, what: string): Error {
  if (error instanceof RedisUnavailableError || error instanceof OnceForeignValueError) return error;
  const message = error instanceof Error ? error.message : String(error);
  if (message.startsWith('WRONGTYPE')) {
    return new OnceForeignValueError({
      key: '',
      redisKey: '(one of our keys)',
      detail: 'a value of another type',
    });
  }
  return new RedisUnavailableError(`Redis at ${label} failed ${what}: ${message}`, {
    cause: safeCause(error),
  });
}

/**
 * A client's error, as a cause we can hand on: its name and message only. Clients attach more (ioredis
 * puts the failed command on the error — for HELLO or AUTH, the password among its arguments).
 */
export function safeCause(error: unknown): Error {
  const copy = new Error(error instanceof Error ? error.message : String(error));
  copy.name = error instanceof Error ? error.name : 'Error';
  return copy;
}
