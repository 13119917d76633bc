import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { clientFamily, describeUrl, type RedisSpec } from './drivers/index.js';
import { OnceInputError } from './errors.js';
import { MAX_KEY_BYTES } from './keys.js';
import { MIN_LEASE_MS } from './lease.js';

/** Options of `createOnce`. Durations are positive integers of milliseconds. */
export interface OnceOptions {
  /**
   * The Redis to coordinate through: a client you own (never closed by us) — an ioredis `Redis` or
   * `Cluster` (v5 or v6, RESP2 or RESP3), a node-redis `createClient()` or `createCluster()` (v5 or
   * later, passed connected) — or a `redis://`/`rediss://` URL, or `{ cluster: [{ host, port }, …] }`
   * (we connect, and close on `close()`). Give either `redis` or `quorum`.
   * @example createOnce({ redis: new Redis(process.env.REDIS_URL) })
   * @example createOnce({ redis: await createClient({ url: process.env.REDIS_URL }).connect() })
   */
  redis?: RedisSpec;
  /**
   * Independent Redis masters (clients or URLs): the lease follows the redlock algorithm and the state
   * is written to, and read from, a majority. Use an odd number (3 or 5); each master once.
   */
  quorum?: Array<RedisSpec>;
  /**
   * Prefix of every Redis key and channel. No braces or spaces.
   * @default 'once'
   */
  namespace?: string;
  /**
   * Lease TTL. The leader renews it at about a third of this while fn runs; a crashed leader is taken
   * over once it expires. At least 100 ms.
   * @default 30_000
   */
  leaseMs?: number;
  /**
   * How long a caller waits for another node's run before OnceTimeoutError. It bounds waiting only:
   * a caller whose own fn is running is not cut off by it.
   * @default 600_000 (10 minutes)
   */
  waitTimeoutMs?: number;
  /**
   * Attempts allowed cluster-wide before every caller fails fast with OnceFailedError. A crash or a
   * lost lease spends one too. `reset(key)` starts the count again.
   * @default 3
   */
  maxAttempts?: number;
  /**
   * Expire the done state this long after completion (the key may then run again). Unset: keep it
   * until `reset`.
   * @default undefined
   */
  doneTtlMs?: number;
  /**
   * Bound on every Redis round trip (and on connecting). Past it, calls reject with
   * RedisUnavailableError.
   * @default 5_000
   */
  redisTimeoutMs?: number;
  /**
   * How long a leader whose event loop is blocked (a CPU-bound fn) keeps its lease: while fn runs, a
   * standby thread with its own connection renews the lease for a stalled event loop, for this long
   * at most; a loop blocked longer counts as wedged and loses its lease (a follower takes over once it
   * expires, up to `leaseMs` later). 0 renews on the main thread only, starting no thread.
   * @default 60_000
   */
  maxStallMs?: number;
  /**
   * Most done keys kept in this process's memory; the oldest are dropped first (a dropped key costs
   * one Redis round trip on its next call).
   * @default 10_000
   */
  memoMaxKeys?: number;
  /**
   * For replicated setups (Sentinel, Cluster with replicas): after a claim and after `complete`, wait
   * (Redis WAIT) until this many replicas acknowledged the write, at most `timeoutMs`. It narrows the
   * window in which a failover could lose the lease or the done state; it does not close it, and an
   * acknowledgement that does not come in time is logged (`DEBUG=redis-once:*`), not an error.
   * @default undefined (no waiting)
   * @example { replicas: 1, timeoutMs: 500 }
   */
  replicaAck?: { replicas: number; timeoutMs?: number };
  /**
   * Names this process in the state (`owner`) and in `ctx.nodeId`.
   * @default `${hostname}/${pid}/${4 random hex bytes}`
   */
  nodeId?: string;
  /**
   * Where redis-once says what an operator should know, in the shape pino and console share: methods
   * `debug`, `info`, `warn`, `error`, called with an object first and a message (`logger.warn({ server,
   * maxmemoryPolicy }, 'redis-once: …')`). Silent when not given. With a logger, each instance checks
   * the eviction policy once (INFO memory; skipped quietly where INFO is not allowed) and warns when it
   * can evict a lease or a done state.
   * @default undefined (silent)
   * @example createOnce({ redis, logger: pino() }) // or logger: console
   */
  logger?: OnceLogger;
}

/** The logging shape pino and console share: an object first, then a message. */
export interface OnceLogger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** Per-call overrides of `run`, `runDetailed` and `wrap`. */
export interface RunOptions {
  /** Overrides `leaseMs` for this call's attempt, if it leads. */
  leaseMs?: number;
  /** This caller's own wait bound. Ends only this caller's wait. */
  waitTimeoutMs?: number;
  /** Ends only this caller's wait (rejects with an AbortError); never cancels the shared work. */
  signal?: AbortSignal;
  /** Overrides `doneTtlMs` for the done state this call's attempt records, if it leads. */
  doneTtlMs?: number;
  /** Overrides `maxAttempts` for this caller's decision to take over or fail. */
  maxAttempts?: number;
}

export const DEFAULTS = Object.freeze({
  namespace: 'once',
  leaseMs: 30_000,
  waitTimeoutMs: 600_000,
  maxAttempts: 3,
  redisTimeoutMs: 5_000,
  memoMaxKeys: 10_000,
  maxStallMs: 60_000,
});

export interface ResolvedOptions {
  specs: RedisSpec[];
  namespace: string;
  leaseMs: number;
  waitTimeoutMs: number;
  maxAttempts: number;
  doneTtlMs: number | undefined;
  redisTimeoutMs: number;
  maxStallMs: number;
  memoMaxKeys: number;
  nodeId: string;
  replicaAck: { replicas: number; timeoutMs: number } | undefined;
  logger: OnceLogger | undefined;
}

const KNOWN_OPTIONS = new Set([
  'redis',
  'quorum',
  'namespace',
  'leaseMs',
  'waitTimeoutMs',
  'maxAttempts',
  'doneTtlMs',
  'redisTimeoutMs',
  'maxStallMs',
  'memoMaxKeys',
  'nodeId',
  'replicaAck',
  'logger',
]);
const KNOWN_RUN_OPTIONS = new Set(['leaseMs', 'waitTimeoutMs', 'signal', 'doneTtlMs', 'maxAttempts']);
const KNOWN_WAIT_OPTIONS = new Set(['waitTimeoutMs', 'signal']);
/** Durations above this are refused: setTimeout cannot wait longer (it would fire at once). */
const MAX_TIMER_MS = 2_147_483_647;

export function resolveOptions(options: OnceOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) {
    throw new OnceInputError(
      'createOnce: options must be an object, e.g. { redis: "redis://localhost:6379" }.',
    );
  }
  rejectUnknown(options, KNOWN_OPTIONS, 'createOnce');
  const hasRedis = options.redis !== undefined;
  const hasQuorum = options.quorum !== undefined;
  if (hasRedis === hasQuorum) {
    throw new OnceInputError(
      'createOnce: give exactly one of `redis` (one Redis) or `quorum` (independent masters).',
    );
  }
  if (hasQuorum && (!Array.isArray(options.quorum) || options.quorum.length === 0)) {
    throw new OnceInputError('createOnce: `quorum` must be a non-empty array of Redis clients or URLs.');
  }
  const specs = hasQuorum ? [...(options.quorum as RedisSpec[])] : [options.redis as RedisSpec];
  for (const spec of specs) checkSpec(spec);
  if (hasQuorum) checkDistinct(specs);
  return {
    specs,
    namespace: checkNamespace(options.namespace ?? DEFAULTS.namespace),
    leaseMs: leaseDuration('leaseMs', options.leaseMs, DEFAULTS.leaseMs),
    waitTimeoutMs: duration('waitTimeoutMs', options.waitTimeoutMs, DEFAULTS.waitTimeoutMs),
    maxAttempts: count('maxAttempts', options.maxAttempts, DEFAULTS.maxAttempts, 1),
    doneTtlMs: optionalDuration('doneTtlMs', options.doneTtlMs),
    redisTimeoutMs: duration('redisTimeoutMs', options.redisTimeoutMs, DEFAULTS.redisTimeoutMs),
    maxStallMs: count('maxStallMs', options.maxStallMs, DEFAULTS.maxStallMs, 0),
    memoMaxKeys: count('memoMaxKeys', options.memoMaxKeys, DEFAULTS.memoMaxKeys, 0),
    replicaAck: checkReplicaAck(options.replicaAck, options.redisTimeoutMs ?? DEFAULTS.redisTimeoutMs),
    logger: checkLogger(options.logger),
    nodeId: checkNodeId(options.nodeId ?? `${hostname()}/${process.pid}/${randomBytes(4).toString('hex')}`),
  };
}

export interface ResolvedRun {
  leaseMs: number;
  waitTimeoutMs: number;
  signal: AbortSignal | undefined;
  doneTtlMs: number | undefined;
  maxAttempts: number;
}

/** The run options of calls that pass none, made once per instance: this is every call's path. */
const noRunOptions = new WeakMap<ResolvedOptions, ResolvedRun>();

export function resolveRunOptions(options: RunOptions | undefined, base: ResolvedOptions): ResolvedRun {
  if (options === undefined) {
    let resolved = noRunOptions.get(base);
    if (!resolved) {
      const { leaseMs, waitTimeoutMs, doneTtlMs, maxAttempts } = base;
      resolved = Object.freeze({ leaseMs, waitTimeoutMs, signal: undefined, doneTtlMs, maxAttempts });
      noRunOptions.set(base, resolved);
    }
    return resolved;
  }
  if (typeof options !== 'object' || options === null) {
    throw new OnceInputError('run: options must be an object such as { waitTimeoutMs: 60_000 }.');
  }
  rejectUnknown(options, KNOWN_RUN_OPTIONS, 'run');
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
    throw new OnceInputError('run: `signal` must be an AbortSignal.');
  }
  return {
    leaseMs: leaseDuration('leaseMs', options.leaseMs, base.leaseMs),
    waitTimeoutMs: duration('waitTimeoutMs', options.waitTimeoutMs, base.waitTimeoutMs),
    signal: options.signal,
    doneTtlMs:
      options.doneTtlMs === undefined ? base.doneTtlMs : optionalDuration('doneTtlMs', options.doneTtlMs),
    maxAttempts: count('maxAttempts', options.maxAttempts, base.maxAttempts, 1),
  };
}

/** Options of `wait`. */
export interface WaitOptions {
  /** This caller's own wait bound. */
  waitTimeoutMs?: number;
  /** Ends only this caller's wait (rejects with an AbortError). */
  signal?: AbortSignal;
}

export function resolveWaitOptions(
  options: WaitOptions | undefined,
  base: ResolvedOptions,
): { waitTimeoutMs: number; signal: AbortSignal | undefined } {
  if (options === undefined) return { waitTimeoutMs: base.waitTimeoutMs, signal: undefined };
  if (typeof options !== 'object' || options === null) {
    throw new OnceInputError('wait: options must be an object such as { waitTimeoutMs: 60_000 }.');
  }
  rejectUnknown(options, KNOWN_WAIT_OPTIONS, 'wait');
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
    throw new OnceInputError('wait: `signal` must be an AbortSignal.');
  }
  return {
    waitTimeoutMs: duration('waitTimeoutMs', options.waitTimeoutMs, base.waitTimeoutMs),
    signal: options.signal,
  };
}

/** Keys are 1 to 1,024 bytes of UTF-8 (lone surrogates cannot be encoded, so they are refused too). */
export function checkKey(key: unknown): string {
  if (typeof key !== 'string') {
    throw new OnceInputError(`key must be a string, got ${describe(key)}.`);
  }
  if (key.length === 0) throw new OnceInputError('key must not be empty.');
  if (!key.isWellFormed())
    throw new OnceInputError('key must be valid UTF-8 (it has a lone surrogate).', { key });
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes > MAX_KEY_BYTES) {
    throw new OnceInputError(`key is ${bytes} bytes of UTF-8; at most ${MAX_KEY_BYTES} are allowed.`, {
      key: `${key.slice(0, 64)}…`,
    });
  }
  return key;
}

export function checkFn(fn: unknown): void {
  if (typeof fn !== 'function') throw new TypeError(`fn must be a function, got ${describe(fn)}.`);
}

function checkSpec(spec: unknown): void {
  if (typeof spec === 'string') {
    if (/^rediss?:\/\/./.test(spec)) return;
    throw new OnceInputError(`redis: "${describeUrl(spec)}" is not a redis:// or rediss:// URL.`);
  }
  if (clientFamily(spec) !== undefined) return;
  const cluster = (spec as { cluster?: unknown } | null)?.cluster;
  if (typeof spec === 'object' && Array.isArray(cluster)) {
    if (cluster.length > 0) return;
    throw new OnceInputError('redis: { cluster } needs at least one { host, port } node.');
  }
  throw new OnceInputError(
    'redis must be an ioredis or node-redis client, a redis:// URL or { cluster: [{ host, port }] }, ' +
      `got ${describe(spec)}.`,
  );
}

/**
 * A quorum counts each master once: the same client, or two URLs of one server (whatever the database
 * or the user), would fake a majority.
 */
function checkDistinct(specs: RedisSpec[]): void {
  const seen = new Set<unknown>();
  for (const spec of specs) {
    const identity = typeof spec === 'string' ? describeUrl(spec).replace(/\/.*$/, '') : spec;
    if (seen.has(identity)) {
      throw new OnceInputError(
        `quorum: ${typeof spec === 'string' ? `"${identity}"` : 'a client'} is given twice; each master counts once.`,
      );
    }
    seen.add(identity);
  }
}

function checkLogger(value: unknown): OnceLogger | undefined {
  if (value === undefined) return undefined;
  const missing = ['debug', 'info', 'warn', 'error'].filter(
    (level) => typeof (value as Record<string, unknown> | null)?.[level] !== 'function',
  );
  if (typeof value !== 'object' || value === null || missing.length > 0) {
    throw new OnceInputError(
      `logger must have debug, info, warn and error methods (pino, console, or the like); missing: ${missing.join(', ')}.`,
    );
  }
  return value as OnceLogger;
}

function checkReplicaAck(value: unknown, redisTimeoutMs: number): ResolvedOptions['replicaAck'] {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null) {
    throw new OnceInputError('replicaAck must be an object such as { replicas: 1, timeoutMs: 500 }.');
  }
  rejectUnknown(value, new Set(['replicas', 'timeoutMs']), 'replicaAck');
  const { replicas, timeoutMs } = value as { replicas?: unknown; timeoutMs?: unknown };
  const resolved = {
    replicas: count('replicaAck.replicas', replicas, 1, 1),
    timeoutMs: duration('replicaAck.timeoutMs', timeoutMs, Math.min(1000, Math.floor(redisTimeoutMs / 2))),
  };
  // WAIT holds its connection for up to timeoutMs; it must answer within our own bound on the call.
  if (resolved.timeoutMs >= redisTimeoutMs) {
    throw new OnceInputError(
      `replicaAck.timeoutMs (${resolved.timeoutMs}) must be below redisTimeoutMs (${redisTimeoutMs}).`,
    );
  }
  return resolved;
}

function checkNamespace(namespace: unknown): string {
  if (typeof namespace !== 'string' || !/^[^\s{}]{1,128}$/.test(namespace)) {
    throw new OnceInputError(
      `namespace must be 1 to 128 characters without spaces or braces, got ${describe(namespace)}.`,
    );
  }
  return namespace;
}

function checkNodeId(nodeId: unknown): string {
  if (typeof nodeId !== 'string' || nodeId.length === 0 || nodeId.length > 256) {
    throw new OnceInputError(`nodeId must be a string of 1 to 256 characters, got ${describe(nodeId)}.`);
  }
  return nodeId;
}

/** A duration a timer waits on: at most what setTimeout can wait. */
function duration(name: string, value: unknown, fallback: number, max = MAX_TIMER_MS): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0 || value > max) {
    throw new OnceInputError(
      `${name} must be a positive integer of milliseconds (at most ${max}), got ${describe(value)}.`,
    );
  }
  return value;
}

function leaseDuration(name: string, value: unknown, fallback: number): number {
  const ms = duration(name, value, fallback);
  if (ms < MIN_LEASE_MS) {
    throw new OnceInputError(
      `${name} must be at least ${MIN_LEASE_MS} ms (renewal needs room for a round trip and a retry), got ${ms}.`,
    );
  }
  return ms;
}

/** The done TTL: no timer waits on it (Redis expires the state; memory compares instants). */
function optionalDuration(name: string, value: unknown): number | undefined {
  return value === undefined ? undefined : duration(name, value, 0, Number.MAX_SAFE_INTEGER);
}

function count(name: string, value: unknown, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new OnceInputError(`${name} must be an integer of at least ${min}, got ${describe(value)}.`);
  }
  return value;
}

export function rejectUnknown(options: object, known: Set<string>, where: string): void {
  for (const name of Object.keys(options)) {
    if (!known.has(name)) {
      throw new OnceInputError(
        `${where}: unknown option "${name}"; known options: ${[...known].join(', ')}.`,
      );
    }
  }
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean')
    return String(value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}
