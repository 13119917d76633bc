/**
 * Redis URLs as we show and accept them: shown as host:port/db, never with the user or password; and
 * refused, before any client sees them, when they cannot be read without guessing where the password
 * ends.
 */
import { OnceInputError } from '../errors.js';

/** host:port/db of a URL: never its user or password (nothing of it, when it is ambiguous). */
export function describeUrl(url: string): string {
  const parsed = parseUnambiguous(url);
  if (!parsed) return 'redis';
  const db = parsed.pathname && parsed.pathname !== '/' ? parsed.pathname : '';
  return `${parsed.hostname}:${parsed.port || 6379}${db}`;
}

/**
 * Throws OnceInputError, naming no part of the URL, for a URL a client would misread. A password
 * holding an unencoded `/`, `?` or `#` ends the URL's authority early: the client then takes part of
 * the password for the host (and prints it in "getaddrinfo ENOTFOUND <that part>") or the database;
 * a URL that does not parse makes ioredis throw Node's TypeError, whose `input` is the whole URL.
 */
export function checkUrl(url: string): void {
  if (parseUnambiguous(url)) return;
  throw new OnceInputError(
    'redis: the URL cannot be read as redis[s]://[user:password@]host[:port][/db]; percent-encode any ' +
      '/ ? # @ or % in the user name or password (encodeURIComponent). (The URL is not repeated here: ' +
      'it may hold the password.)',
  );
}

/** The parsed URL, or undefined when it does not parse or an `@` lies past where its authority ends. */
function parseUnambiguous(url: string): URL | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  const start = url.indexOf('//');
  if (start === -1) return parsed;
  const rest = url.slice(start + 2);
  const end = rest.search(/[/?#]/);
  // Everything after the authority (path, query, fragment) is no place for an `@`.
  if (end !== -1 && rest.indexOf('@', end) !== -1) return undefined;
  return parsed;
}
