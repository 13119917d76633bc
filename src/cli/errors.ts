/**
 * The CLI's own errors, and the one place that turns any error into an exit code and one sentence.
 */
import { constants } from 'node:os';
import {
  LeaseLostError,
  OnceAbortError,
  OnceBusyError,
  OnceFailedError,
  OnceForeignValueError,
  OnceInputError,
  OnceTimeoutError,
  RedisUnavailableError,
} from '../index.js';
import { formatDuration } from './durations.js';
import { EXIT, SIGNAL_BASE } from './exit-codes.js';
import { cliWording } from './wording.js';

/** A bad flag or value: exit 64. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** The command ran here and failed; `exitCode` is what `run` exits with. */
export class CommandFailedError extends Error {
  override name = 'CommandFailedError';
  constructor(
    readonly exitCode: number,
    readonly signal: NodeJS.Signals | null,
    program: string,
    /** The end of the command's stderr: why it failed, for `status`, `wait` and every follower. */
    readonly stderrTail = '',
  ) {
    super(
      (signal
        ? `the command (${program}) was killed by ${signal}`
        : `the command (${program}) exited with code ${exitCode}`) +
        (stderrTail ? `; its stderr ended with: ${stderrTail}` : ''),
    );
  }
}

/** The command could not be started (not found, not executable). */
export class CommandSpawnError extends Error {
  override name = 'CommandSpawnError';
  readonly exitCode: number;
  constructor(program: string, cause: NodeJS.ErrnoException) {
    const notFound = cause.code === 'ENOENT';
    super(
      notFound
        ? `the command "${program}" was not found (check PATH, or run it through sh -c)`
        : `the command "${program}" could not be started: ${cause.code ?? cause.message}`,
      { cause },
    );
    this.exitCode = notFound ? EXIT.COMMAND_NOT_FOUND : EXIT.COMMAND_NOT_EXECUTABLE;
  }
}

/**
 * A signal (SIGTERM, SIGINT) was forwarded to the command. fn rejects with this once the command has
 * exited, whatever its exit code, so the attempt is recorded as failed and the lease released at once:
 * a follower takes over without waiting for the lease to expire.
 */
export class InterruptedError extends Error {
  override name = 'InterruptedError';
  constructor(
    readonly signal: NodeJS.Signals,
    detail: string,
  ) {
    super(`interrupted by ${signal}${detail ? ` (${detail})` : ''}`);
  }
}

export function signalExitCode(signal: NodeJS.Signals): number {
  return SIGNAL_BASE + (constants.signals[signal] ?? 0);
}

export interface Outcome {
  code: number;
  /** One sentence, without a trailing period; undefined when nothing needs saying. */
  message: string | undefined;
}

export interface ErrorContext {
  key?: string | undefined;
  /** The Redis the command used, masked, for "unreachable" messages. */
  redis?: string | undefined;
}

/** The exit code and the one-sentence message for an error of `redis-once <command>`. */
export function describeError(error: unknown, context: ErrorContext = {}): Outcome {
  const quoted = context.key === undefined ? 'the key' : `"${context.key}"`;
  if (error instanceof UsageError) return { code: EXIT.USAGE, message: error.message.replace(/\.$/, '') };
  if (error instanceof OnceInputError) return { code: EXIT.USAGE, message: cliWording(error.message) };
  if (error instanceof CommandFailedError) {
    return { code: error.exitCode, message: `${quoted} failed here: ${error.message}` };
  }
  if (error instanceof CommandSpawnError) {
    return { code: error.exitCode, message: `${quoted} failed here: ${error.message}` };
  }
  if (error instanceof InterruptedError) {
    return {
      code: signalExitCode(error.signal),
      message: `${quoted} was ${error.message}, so the attempt was recorded as failed and the lease released: another node can take over now`,
    };
  }
  if (error instanceof OnceAbortError) {
    const signal = error.cause as NodeJS.Signals;
    return {
      code: signalExitCode(signal),
      message: `interrupted by ${signal}; stopped waiting for ${quoted}`,
    };
  }
  if (error instanceof OnceTimeoutError) {
    return {
      code: EXIT.WAIT_TIMEOUT,
      message:
        `gave up waiting for ${quoted} after ${formatDuration(error.timeoutMs)} (--timeout); ` +
        'it is still running or waiting for a takeover elsewhere (`redis-once status --key` shows who runs it)',
    };
  }
  if (error instanceof OnceFailedError) {
    return {
      code: EXIT.FAILED_ELSEWHERE,
      message:
        `${quoted} failed on all ${error.attempts} attempt(s) (last error${error.lastOwner ? `, on ${error.lastOwner}` : ''}: ${error.lastErrorName}: ` +
        `${error.lastErrorMessage.replace(/\.$/, '')}); fix the cause, then run \`redis-once reset\` or raise --max-attempts`,
    };
  }
  if (error instanceof LeaseLostError) {
    return {
      code: EXIT.LEASE_LOST,
      message:
        `this node lost the lease of ${quoted} while the command ran, so the command was stopped and its result not recorded; ` +
        'another node takes over while attempts remain (if Redis was slow or this process paused, raise --lease)',
    };
  }
  if (error instanceof OnceBusyError) {
    return {
      code: EXIT.RESET_REFUSED,
      message:
        `${quoted} is running${error.owner ? ` on ${error.owner}` : ''}; reset refused ` +
        '(pass --force to reset it anyway: the running leader loses its lease)',
    };
  }
  if (error instanceof RedisUnavailableError && error.reason !== undefined) {
    return { code: EXIT.REDIS_UNAVAILABLE, message: refusalMessage(error, context.redis) };
  }
  if (error instanceof RedisUnavailableError) {
    return {
      code: EXIT.REDIS_UNAVAILABLE,
      message:
        `Redis${context.redis ? ` at ${context.redis}` : ''} is unreachable: ` +
        `${lowerFirst(error.message.replace(/\.$/, '').replace('(redisTimeoutMs)', '(--redis-timeout)'))}`,
    };
  }
  if (error instanceof OnceForeignValueError) {
    return { code: EXIT.FOREIGN_VALUE, message: oneSentence(error.message) };
  }
  const message = error instanceof Error ? error.message : String(error);
  return {
    code: EXIT.INTERNAL,
    message: `unexpected error: ${message.replace(/\.$/, '')} (run with --verbose for details)`,
  };
}

/**
 * Redis or TLS refused: what the CLI user changes (a flag, an environment variable), with the client's
 * own words. The exit code stays 69: a script that retries on it should not tell these apart.
 */
function refusalMessage(error: RedisUnavailableError, redis: string | undefined): string {
  const at = redis ? `Redis at ${redis}` : 'Redis';
  const words = clientWords(error);
  switch (error.reason) {
    case 'tls-unknown-ca':
      return (
        `TLS to ${at} failed: the server's certificate is signed by a CA Node does not trust (${words}); ` +
        "give that CA's certificate file as NODE_EXTRA_CA_CERTS=/path/to/ca.pem"
      );
    case 'tls-hostname':
      return (
        `TLS to ${at} failed: the server's certificate is for another host name (${words}); ` +
        'name the server in --redis by a host name its certificate lists'
      );
    case 'tls':
      return (
        `TLS to ${at} failed (${words}); check that the port speaks TLS (rediss:// needs the server's ` +
        'TLS port) and that its certificate is valid'
      );
    case 'auth':
      return /NOAUTH|unauthenticated/.test(words)
        ? `${at} requires a password (${words}); give the user and password in --redis or REDIS_URL: redis://user:password@host:port`
        : `${at} refused the credentials (${words}); check the user and password in --redis or REDIS_URL (percent-encode / ? # @ % in them)`;
    default:
      // noperm: the library's message names what was refused (a script's command, a channel).
      return `${oneSentence(error.message)} (\`redis-once doctor\` checks every permission)`;
  }
}

/** The innermost cause's message: the client's (or TLS's) own words, without a trailing period. */
function clientWords(error: Error): string {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current instanceof Error && current.cause instanceof Error; depth++) {
    current = current.cause;
  }
  return (current instanceof Error ? current.message : String(current)).replace(/\.+$/, '');
}

/** `A. B.` → `A; b`: the library may say two things; a CLI error line is one sentence. */
function oneSentence(text: string): string {
  return text
    .replace(/\.$/, '')
    .replace(/\. ([A-Z])([a-z])/g, (_, first: string, second: string) => `; ${first.toLowerCase()}${second}`);
}

/** `The Redis …` → `the Redis …`, to continue a sentence (an acronym such as `ERR` is kept). */
function lowerFirst(text: string): string {
  return /^[A-Z][a-z]/.test(text) ? text.charAt(0).toLowerCase() + text.slice(1) : text;
}
