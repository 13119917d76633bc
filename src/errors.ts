/**
 * One error class per failure a caller can act on. Each has a stable `name` (it prints as itself,
 * not as `Error`), a stable `code` to switch on, and a `cause` where there is one.
 */
import { type RedisRefusalReason, refusalReason } from './drivers/refusal-reason.js';

export type { RedisRefusalReason };

export type OnceErrorCode =
  | 'ONCE_INPUT'
  | 'ONCE_LEASE_LOST'
  | 'ONCE_TIMEOUT'
  | 'ONCE_FAILED'
  | 'ONCE_REDIS_UNAVAILABLE'
  | 'ONCE_FOREIGN_VALUE'
  | 'ONCE_SERIALIZATION'
  | 'ONCE_ABORTED'
  | 'ONCE_BUSY'
  | 'ONCE_CLOSED'
  | 'ONCE_REENTRANT';

/** Base class of every error redis-once throws (except TypeError for a non-function `fn`). */
export class OnceError extends Error {
  override name = 'OnceError';
  readonly code: OnceErrorCode;
  /** The once-key the error is about, when there is one. */
  readonly key: string | undefined;

  constructor(code: OnceErrorCode, message: string, options?: { key?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.key = options?.key;
  }
}

/** Bad input: an empty or oversized key, a negative duration, an unknown option. Redis is untouched. */
export class OnceInputError extends OnceError {
  override name = 'OnceInputError';
  constructor(message: string, options?: { key?: string }) {
    super('ONCE_INPUT', message, options);
  }
}

/**
 * The leader could not prove its lease in time (Redis unreachable, process paused): `ctx.signal` was
 * aborted with this error, and the result of that attempt was not recorded.
 */
export class LeaseLostError extends OnceError {
  override name = 'LeaseLostError';
  constructor(message: string, options?: { key?: string; cause?: unknown }) {
    super('ONCE_LEASE_LOST', message, options);
  }
}

/** This caller's `waitTimeoutMs` elapsed. The shared work goes on; other callers are unaffected. */
export class OnceTimeoutError extends OnceError {
  override name = 'OnceTimeoutError';
  readonly timeoutMs: number;
  constructor(message: string, options: { key: string; timeoutMs: number }) {
    super('ONCE_TIMEOUT', message, options);
    this.timeoutMs = options.timeoutMs;
  }
}

/** The key failed on every allowed attempt, cluster-wide. `reset(key)` clears it. */
export class OnceFailedError extends OnceError {
  override name = 'OnceFailedError';
  /** The `name` of the last attempt's error, e.g. `'TypeError'`. */
  readonly lastErrorName: string;
  /** The `message` of the last attempt's error. */
  readonly lastErrorMessage: string;
  readonly attempts: number;
  /** The node id that ran the last attempt, when the state names it. */
  readonly lastOwner: string | undefined;
  constructor(options: {
    key: string;
    attempts: number;
    lastErrorName: string;
    lastErrorMessage: string;
    lastOwner?: string | undefined;
  }) {
    const on = options.lastOwner ? ` (on ${options.lastOwner})` : '';
    super(
      'ONCE_FAILED',
      `"${options.key}" failed after ${options.attempts} attempt(s); last error${on}: ` +
        `${options.lastErrorName}: ${options.lastErrorMessage}. Fix the cause, then reset("${options.key}") ` +
        'or raise maxAttempts.',
      { key: options.key },
    );
    this.attempts = options.attempts;
    this.lastOwner = options.lastOwner;
    this.lastErrorName = options.lastErrorName;
    this.lastErrorMessage = options.lastErrorMessage;
  }
}

/**
 * Redis (or a majority of the quorum) could not be used: it did not answer within `redisTimeoutMs`
 * (`reason` undefined: wait, retry), or it or TLS refused us (`reason` set: a setting to fix, named by
 * the message, which says what to change). A refusal ends the call as soon as it is known.
 */
export class RedisUnavailableError extends OnceError {
  override name = 'RedisUnavailableError';
  /**
   * Why, when Redis or TLS refused: `'tls-unknown-ca'` (a certificate from a CA Node does not trust),
   * `'tls-hostname'` (a certificate for another name), `'tls'` (another TLS failure), `'auth'`
   * (credentials refused or missing), `'noperm'` (the ACL user lacks a command, key or channel).
   * Undefined when Redis did not answer in time or the connection dropped.
   */
  readonly reason: RedisRefusalReason | undefined;
  constructor(message: string, options?: { key?: string; cause?: unknown; reason?: RedisRefusalReason }) {
    super('ONCE_REDIS_UNAVAILABLE', message, options);
    // Given, or read from the cause: errors made around a client's refusal are typed wherever made.
    this.reason = options?.reason ?? refusalReason(options?.cause);
  }
}

/** One of our Redis keys holds a value we did not write (wrong type or shape). Nothing was overwritten. */
export class OnceForeignValueError extends OnceError {
  override name = 'OnceForeignValueError';
  /** The Redis key holding the foreign value. */
  readonly redisKey: string;
  constructor(options: { key: string; redisKey: string; detail: string }) {
    super(
      'ONCE_FOREIGN_VALUE',
      `Redis key "${options.redisKey}" holds ${options.detail}, not redis-once state; nothing was changed. ` +
        'Use another namespace, or delete that key if it is stale.',
      { key: options.key },
    );
    this.redisKey = options.redisKey;
  }
}

/** fn returned a value that does not survive JSON; the attempt is recorded as failed. */
export class OnceSerializationError extends OnceError {
  override name = 'OnceSerializationError';
  constructor(message: string, options: { key: string; cause?: unknown }) {
    super('ONCE_SERIALIZATION', message, options);
  }
}

/** This caller's `signal` aborted its wait. `cause` is `signal.reason`. The shared work goes on. */
export class OnceAbortError extends OnceError {
  // Named like the platform's abort errors so `err.name === 'AbortError'` checks keep working.
  override name = 'AbortError';
  constructor(options: { key: string; cause: unknown }) {
    super('ONCE_ABORTED', `Waiting for "${options.key}" was aborted by the caller's signal.`, options);
  }
}

/** `reset` refused: a leader holds the lease. Pass `{ force: true }` to reset anyway. */
export class OnceBusyError extends OnceError {
  override name = 'OnceBusyError';
  /** The node id of the leader holding the lease, when known. */
  readonly owner: string | undefined;
  constructor(options: { key: string; owner: string | undefined }) {
    super(
      'ONCE_BUSY',
      `"${options.key}" is running${options.owner ? ` on ${options.owner}` : ''}; reset refused. ` +
        'Pass { force: true } to reset it anyway (the running leader will lose its lease).',
      { key: options.key },
    );
    this.owner = options.owner;
  }
}

/** The `Once` instance was closed while this call was waiting or running. */
export class OnceClosedError extends OnceError {
  override name = 'OnceClosedError';
  constructor(key?: string) {
    super('ONCE_CLOSED', 'This Once instance is closed; create a new one with createOnce().', { key });
  }
}

/** `run(key)` was called from inside its own `fn`: it would wait on itself forever. */
export class OnceReentrantError extends OnceError {
  override name = 'OnceReentrantError';
  constructor(key: string) {
    super(
      'ONCE_REENTRANT',
      `run("${key}") was called from inside its own fn; it would wait for itself forever.`,
      { key },
    );
  }
}

/** The `{ name, message }` of an error, as recorded in Redis and carried by OnceFailedError. */
export interface ErrorSummary {
  name: string;
  message: string;
}

/** The most of an error's message that is stored in Redis and carried to every caller. */
export const MAX_ERROR_MESSAGE_BYTES = 4096;
const MAX_ERROR_NAME_CHARS = 128;

/** An error's `{ name, message }`, bounded in size (a huge message must not bloat every state). */
export function summarizeError(error: unknown): ErrorSummary {
  const name = error instanceof Error ? safeString(error.name) : 'NonError';
  const message = error instanceof Error ? safeString(error.message) : safeString(error);
  return {
    name: name.slice(0, MAX_ERROR_NAME_CHARS),
    message: truncateBytes(message, MAX_ERROR_MESSAGE_BYTES),
  };
}

function truncateBytes(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text, 'utf8') <= maxBytes) return text;
  const marker = ' … (truncated)';
  let cut = text.slice(0, maxBytes);
  while (Buffer.byteLength(cut, 'utf8') > maxBytes - Buffer.byteLength(marker)) cut = cut.slice(0, -64);
  // Never split a surrogate pair.
  if (/[\uD800-\uDBFF]$/.test(cut)) cut = cut.slice(0, -1);
  return cut + marker;
}

function safeString(value: unknown): string {
  try {
    return String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}
