/**
 * Where the CLI's Redis is (--redis, --cluster, REDIS_URL), how it is shown (never with a password),
 * and the Once built from the flags.
 */
import { format } from 'node:util';
import createDebug from 'debug';
import { createOnce, type Once, OnceInputError, type RedisSpec } from '../index.js';
import { UsageError } from './errors.js';
import { cliWording } from './wording.js';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

export interface ConnectionFlags {
  redis?: string;
  cluster?: string;
  namespace?: string;
  redisTimeout?: number;
  nodeId?: string;
}

export interface Connection {
  spec: RedisSpec;
  /** For messages: the URL with its password (and a password-only user) replaced by `***`. */
  display: string;
  /** Strings that must never be printed (the password, raw and decoded). */
  secrets: string[];
}

/**
 * `--cluster host:port,…` wins over `--redis`, which wins over REDIS_URL (commander fills `redis`
 * from the environment), then redis://127.0.0.1:6379. `--redis` takes a redis:// or rediss:// URL,
 * or a bare `host[:port]`.
 */
export function resolveConnection(flags: ConnectionFlags): Connection {
  if (flags.cluster !== undefined) {
    const nodes = parseClusterNodes(flags.cluster);
    return {
      spec: { cluster: nodes },
      display: `cluster(${nodes.map((n) => `${n.host}:${n.port}`).join(',')})`,
      secrets: [],
    };
  }
  const raw = (flags.redis ?? '').trim() || DEFAULT_REDIS_URL;
  const url = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `redis://${raw}`;
  const secrets = secretsOf(url);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(
      `--redis "${scrub(maskRedisUrl(url), secrets)}" is not a valid URL; use redis://[:password@]host:port[/db] (percent-encode a / # ? or @ in the password)`,
    );
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new UsageError(
      `--redis "${maskRedisUrl(url)}" must be a redis:// or rediss:// URL, or host:port (got ${parsed.protocol}//)`,
    );
  }
  if (!parsed.hostname) throw new UsageError(`--redis "${maskRedisUrl(url)}" has no host`);
  maskDebugOutput(secrets);
  return { spec: url, display: maskRedisUrl(url), secrets };
}

/**
 * Debug lines (DEBUG=…) are masked too, --verbose or not: ioredis' own (DEBUG=ioredis:*) print each
 * command's arguments, HELLO's and AUTH's password among them. (--verbose installs the same mask.)
 */
function maskDebugOutput(secrets: readonly string[]): void {
  if (secrets.length === 0) return;
  createDebug.log = (...args: unknown[]) => {
    process.stderr.write(`${scrub(format(...args), secrets)}\n`);
  };
}

/** `a:7000,b:7001` → [{ host: 'a', port: 7000 }, …]; a missing port is 6379. */
export function parseClusterNodes(text: string): Array<{ host: string; port: number }> {
  const nodes = text
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)
    .map((part) => {
      const match = /^(\[[^\]]+\]|[^:]+)(?::(\d{1,5}))?$/.exec(part);
      const port = Number(match?.[2] ?? 6379);
      if (!match || port < 1 || port > 65_535) {
        throw new UsageError(
          `--cluster "${part}" is not host:port; use e.g. --cluster 10.0.0.1:7000,10.0.0.2:7000`,
        );
      }
      return { host: match[1]!.replace(/^\[|\]$/g, ''), port };
    });
  if (nodes.length === 0) throw new UsageError('--cluster needs at least one host:port');
  return nodes;
}

/**
 * The URL with its password replaced by `***`. A user without a password is masked too: some
 * clients read `redis://secret@host` as a password.
 */
export function maskRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    else if (parsed.username) parsed.username = '***';
    return parsed.toString().replace(/\/$/, '');
  } catch {
    // Unparsable (a password holding `/`, `#` or `?`, not percent-encoded): everything up to the last
    // `@` may be the password.
    return url.replace(/\/\/.*@/, '//***@');
  }
}

function secretsOf(url: string): string[] {
  // Up to the last `@`: a password may hold `/`, `#`, `?` or `@` that its writer did not encode.
  const auth = /^[a-z][a-z0-9+.-]*:\/\/(.*)@/i.exec(url)?.[1];
  if (!auth) return [];
  const colon = auth.indexOf(':');
  const secret = colon === -1 ? auth : auth.slice(colon + 1);
  if (!secret) return [];
  const decoded = safeDecode(secret);
  return [...new Set([secret, decoded, encodeURIComponent(decoded)])].filter((s) => s.length > 0);
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** `text` with every secret replaced by `***`. */
export function scrub(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) out = out.split(secret).join('***');
  return out;
}

export interface OnceFlags extends ConnectionFlags {
  lease?: number;
  timeout?: number;
  maxAttempts?: number;
  doneTtl?: number;
}

/** A Once for the flags; bad values (a namespace with braces, say) become usage errors. */
export function openOnce(connection: Connection, flags: OnceFlags): Once {
  try {
    return createOnce({
      redis: connection.spec,
      namespace: flags.namespace,
      leaseMs: flags.lease,
      waitTimeoutMs: flags.timeout,
      maxAttempts: flags.maxAttempts,
      doneTtlMs: flags.doneTtl,
      redisTimeoutMs: flags.redisTimeout,
      nodeId: flags.nodeId,
      // The command runs in a child process: this event loop never blocks, so no standby thread.
      maxStallMs: 0,
    });
  } catch (error) {
    if (error instanceof OnceInputError) throw new UsageError(cliWording(error.message));
    throw error;
  }
}
