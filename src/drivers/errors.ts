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
        { cause: last },
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
  return new RedisUnavailableError(`Redis at ${label} failed ${what}: ${message}`, { cause: error });
}
