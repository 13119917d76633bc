import { OnceForeignValueError, RedisUnavailableError } from '../errors.js';
import { scripts } from '../scripts.js';
import { withTimeout } from '../timeout.js';
import { refusedError } from './refusal.js';
import { safeCause } from './safe-error.js';

export { safeCause };

/**
 * Bounds a call on Redis by `timeoutMs` and turns whatever a client throws into our error classes:
 * a timeout or a connection problem becomes RedisUnavailableError (naming the server and what was
 * asked — a script's name, say — never a secret), a WRONGTYPE reply OnceForeignValueError. Messages
 * are built only when needed: this runs on every call.
 */
export function bounded<T>(
  call: Promise<T>,
  label: string,
  what: string,
  timeoutMs: number,
  /** Read when the bound is reached: the client's connection error by then says why. */
  client?: { readonly lastError: Error | undefined },
): Promise<T> {
  return withTimeout(
    call,
    timeoutMs,
    () => {
      const lastError = client?.lastError;
      // The connection's last error was a refusal (TLS, AUTH): that, not the wait, is the news.
      const refused = lastError && refusedError(lastError, label);
      if (refused) return refused;
      return new RedisUnavailableError(
        `Redis at ${label} did not answer ${describe(what)} within ${timeoutMs} ms (redisTimeoutMs)` +
          `${lastError ? `: ${lastError.message}` : ''}.`,
        { cause: lastError && safeCause(lastError) },
      );
    },
    (error) => translate(error, label, describe(what)),
  );
}

/** A script's name (lower case, one word) reads as "the claim script"; anything else as it is. */
function describe(what: string): string {
  return /^[a-z]+$/.test(what) ? `the ${what} script` : what;
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
  const refused = refusedError(error, label, what, deniedCommand(message));
  if (refused) return refused;
  return new RedisUnavailableError(`Redis at ${label} failed ${what}: ${message}`, {
    cause: safeCause(error),
  });
}

/**
 * Inside a script, an ACL refusal names only the script and a line ("can't run this command …
 * script: <sha>, on @user_script:<line>"): name the command that line calls, and what to grant.
 */
function deniedCommand(message: string): string {
  const match = /can't run this command or subcommand script: ([0-9a-f]{40}), on @user_script:(\d+)/.exec(
    message,
  );
  if (!match) return '';
  const script = Object.values(scripts).find((s) => s.sha === match[1]);
  const line = script?.source.split('\n')[Number(match[2]) - 1] ?? '';
  const command = /redis\.p?call\('([A-Z]+)'/.exec(line)?.[1];
  return command ? ` (that line calls ${command}: the ACL user needs +${command.toLowerCase()})` : '';
}
