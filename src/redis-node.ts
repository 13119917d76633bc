import createDebug from 'debug';
import { Cluster, type ClusterNode, Redis } from 'ioredis';
import { OnceForeignValueError, RedisUnavailableError } from './errors.js';
import { withTimeout } from './timeout.js';

const debug = createDebug('redis-once:redis');

export type RedisClient = Redis | Cluster;

/** How a caller names one Redis: a client it owns, a URL, or the nodes of a Cluster for us to connect. */
export type RedisSpec = RedisClient | string | { cluster: ClusterNode[] };

/**
 * One Redis master (or one Cluster) that we talk to, with every call bounded in time.
 *
 * Connections we open ourselves fail fast: no offline queue (a command to a Redis that is down fails
 * at once instead of waiting in memory), a connect and command timeout. A caller-owned client keeps its
 * own settings (it may queue commands offline), so every call is also raced against our own timer:
 * nothing we do waits on Redis longer than `timeoutMs`, whoever owns the client.
 */
export class RedisNode {
  readonly client: RedisClient;
  /** True when we created the client and so must close it. */
  readonly owned: boolean;
  readonly isCluster: boolean;
  /** host:port for messages, never with a password. */
  readonly label: string;
  private lastError: Error | undefined;
  private closed = false;

  /**
   * @param failFastWhenDown refuse at once while an owned connection is reconnecting, instead of
   *   waiting for it within `timeoutMs`: on a quorum the other masters answer, and waiting for a dead
   *   one would slow every call down. One master is better waited for (a restart takes a moment).
   */
  constructor(
    spec: RedisSpec,
    private readonly timeoutMs: number,
    private readonly failFastWhenDown = false,
  ) {
    if (isClient(spec)) {
      this.client = spec;
      this.owned = false;
    } else {
      this.client = connect(spec, timeoutMs);
      this.owned = true;
      // ioredis prints "Unhandled error event" without a listener; we report through our own errors.
      this.client.on('error', (error: Error) => {
        this.lastError = error;
        debug('%s: %s', this.label, error.message);
      });
    }
    this.isCluster = isClusterClient(this.client);
    this.label = describe(spec, this.client);
  }

  /**
   * Runs `op` once the client is ready, within `timeoutMs` in all. Connection problems and timeouts
   * become RedisUnavailableError; a WRONGTYPE reply becomes OnceForeignValueError for `key`.
   */
  async call<T>(what: string, key: string | undefined, op: (client: RedisClient) => Promise<T>): Promise<T> {
    const deadline = performance.now() + this.timeoutMs;
    const attempt = (async () => {
      await this.ready(deadline);
      return op(this.client);
    })();
    try {
      return await withTimeout(
        attempt,
        this.timeoutMs,
        () =>
          new RedisUnavailableError(
            `Redis at ${this.label} did not answer ${what} within ${this.timeoutMs} ms ` +
              `(redisTimeoutMs)${this.lastError ? `: ${this.lastError.message}` : ''}.`,
            { key, cause: this.lastError },
          ),
      );
    } catch (error) {
      throw this.translate(error, what, key);
    }
  }

  /**
   * WAIT on the connection(s) our scripts wrote through: how many replicas acknowledged our writes.
   * On a Cluster, every master is asked (a key's master is not exposed by ioredis); the least counts.
   */
  async acknowledged(replicas: number, timeoutMs: number, key: string): Promise<number> {
    return this.call('WAIT', key, async (client) => {
      const masters = isClusterClient(client) ? client.nodes('master') : [client];
      const counts = await Promise.all(masters.map((master) => master.wait(replicas, timeoutMs)));
      return Math.min(...counts.map(Number));
    });
  }

  /** A new connection of the same kind, for subscribing (a subscribed connection can run nothing else). */
  duplicate(): RedisClient {
    // A subscriber needs no ready check (INFO) and no client name (CLIENT SETINFO): fewer commands per
    // process, which is most of what a follower costs.
    const override = {
      enableOfflineQueue: false,
      lazyConnect: true,
      disconnectTimeout: 200,
      enableReadyCheck: false,
      disableClientInfo: true,
    } as const;
    const copy =
      this.client instanceof Cluster || isClusterClient(this.client)
        ? (this.client as Cluster).duplicate(undefined, {
            // Completion channels are sharded (SSUBSCRIBE): each is served by its key's shard.
            shardedSubscribers: true,
            redisOptions: { ...this.client.options.redisOptions, ...override },
          })
        : (this.client as Redis).duplicate({ ...override, connectTimeout: this.timeoutMs });
    copy.on('error', (error: Error) => debug('%s subscriber: %s', this.label, error.message));
    return copy;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.owned) await quitOrDisconnect(this.client);
  }

  /** Waits, until `deadline`, for an owned connection to be ready; a caller-owned one is used as it is. */
  /**
   * Waits (bounded) for a first connection still being set up, so a command we hand to the client
   * directly (redlock's) is not refused by a connection that is merely new. A connection known to be
   * down (reconnecting) is not waited for: on a quorum, that master simply votes no.
   */
  async settled(): Promise<void> {
    const status = this.client.status;
    if (!this.owned || (status !== 'wait' && status !== 'connecting' && status !== 'connect')) return;
    await this.ready(performance.now() + this.timeoutMs).catch(() => {});
  }

  private async ready(deadline: number): Promise<void> {
    if (!this.owned || this.client.status === 'ready') return;
    if (this.closed || this.client.status === 'end') {
      throw new RedisUnavailableError(`The connection to ${this.label} is closed.`);
    }
    if (this.failFastWhenDown && this.client.status === 'reconnecting') {
      throw new RedisUnavailableError(`Redis at ${this.label} is down (reconnecting).`, {
        cause: this.lastError,
      });
    }
    if (this.client.status === 'wait') this.client.connect().catch(() => {});
    await waitForReady(this.client, deadline);
  }

  private translate(error: unknown, what: string, key: string | undefined): Error {
    if (error instanceof RedisUnavailableError || error instanceof OnceForeignValueError) return error;
    if (error instanceof Error && error.message.startsWith('WRONGTYPE')) {
      return new OnceForeignValueError({
        key: key ?? '',
        redisKey: key ?? '(a redis-once key)',
        detail: 'a value of another type',
      });
    }
    const message = error instanceof Error ? error.message : String(error);
    return new RedisUnavailableError(`Redis at ${this.label} failed ${what}: ${message}`, {
      key,
      cause: error,
    });
  }
}

/** One pending readiness wait per client, shared by every call made while it connects. */
const readiness = new WeakMap<RedisClient, Promise<void>>();

/** Resolves when `client` is ready; rejects at `deadline` (a performance.now() instant) or on close. */
export function waitForReady(client: RedisClient, deadline: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  const pending = readiness.get(client);
  if (pending) return pending;
  const waiting = new Promise<void>((resolve, reject) => {
    const settle = (error?: Error) => {
      clearTimeout(timer);
      client.off('ready', onReady);
      client.off('end', onEnd);
      readiness.delete(client);
      if (error) reject(error);
      else resolve();
    };
    const onReady = () => settle();
    const onEnd = () => settle(new RedisUnavailableError('The Redis connection was closed.'));
    const timer = setTimeout(
      () =>
        settle(
          new RedisUnavailableError('The Redis connection did not become ready in time (redisTimeoutMs).'),
        ),
      Math.max(0, deadline - performance.now()),
    );
    timer.unref();
    client.on('ready', onReady);
    client.on('end', onEnd);
  });
  readiness.set(client, waiting);
  return waiting;
}

export async function quitOrDisconnect(client: RedisClient): Promise<void> {
  if (client.status === 'end') return;
  if (client.status !== 'ready') {
    client.disconnect();
    if (client.status === 'reconnecting') {
      // ioredis 6.0.0 leaves a client disconnected between reconnect attempts 'reconnecting' forever,
      // with a reconnect timer pending (redis/ioredis#2169); a connect() cancelled at once ends it.
      client.connect().catch(() => {});
      client.disconnect();
    }
    return;
  }
  // QUIT lets pending replies arrive; bound it, since a paused server would never answer.
  const timer = setTimeout(() => client.disconnect(), 1000);
  timer.unref();
  try {
    await client.quit();
  } catch {
    client.disconnect();
  } finally {
    clearTimeout(timer);
  }
}

function connect(spec: string | { cluster: ClusterNode[] }, timeoutMs: number): RedisClient {
  const failFast = {
    enableOfflineQueue: false,
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 1,
    // No enableAutoPipelining: in ioredis 6.0.0 a batch cut off by a dropped connection throws an
    // uncaught TypeError (`results[i] is not iterable`, autoPipelining.js), which would crash the app.
    // ioredis arms a timer of this length on disconnect, waiting for a 'close' that a socket which never
    // connected does not emit again: its 2 s default would keep a finished process alive.
    disconnectTimeout: 200,
    // Keep reconnecting in the background, so calls work again as soon as Redis is back.
    retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
  };
  // Specs were checked by resolveOptions before any connection was made.
  if (typeof spec === 'string') return new Redis(spec, failFast);
  return new Cluster(spec.cluster, {
    enableOfflineQueue: false,
    lazyConnect: true,
    redisOptions: failFast,
    shardedSubscribers: true,
  });
}

function describe(spec: RedisSpec, client: RedisClient): string {
  if (isClusterClient(client)) {
    const nodes = typeof spec === 'object' && !isClient(spec) ? spec.cluster : [];
    const named = nodes.map((node) =>
      typeof node === 'object' ? `${node.host ?? '127.0.0.1'}:${node.port ?? 6379}` : maskUrl(String(node)),
    );
    return `cluster(${named.join(',')})`;
  }
  const { host, port, path } = (client as Redis).options;
  return path ?? `${host}:${port}`;
}

/**
 * Duck-typed, not `instanceof`: a caller's client may come from another copy or major version of
 * ioredis than ours, and is just as good.
 */
export function isClient(spec: unknown): spec is RedisClient {
  const candidate = spec as Partial<Record<'duplicate' | 'evalsha' | 'subscribe', unknown>> | null;
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    typeof candidate.duplicate === 'function' &&
    typeof candidate.evalsha === 'function' &&
    typeof candidate.subscribe === 'function'
  );
}

function isClusterClient(client: RedisClient): client is Cluster {
  return (client as { isCluster?: unknown }).isCluster === true;
}

/** A URL with its password replaced by `***`, for messages and logs. */
export function maskUrl(url: string): string {
  return url.replace(/^(\w+:\/\/)([^:@/]*):([^@/]*)@/, '$1$2:***@');
}
