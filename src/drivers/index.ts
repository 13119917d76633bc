import { Cluster, Redis } from 'ioredis';
import type { Driver } from './driver.js';
import { type IoredisClient, IoredisDriver, type IoredisLike } from './ioredis.js';
import {
  isNodeRedisCluster,
  type NodeRedisClient,
  type NodeRedisCluster,
  NodeRedisDriver,
} from './node-redis.js';
import { checkUrl, describeUrl } from './url.js';

export { describeUrl };

/** A client the caller owns: ioredis `Redis`/`Cluster` (v5, v6), node-redis client or cluster (v5+). */
export type RedisClient = IoredisLike | NodeRedisClient | NodeRedisCluster;

/** How a caller names one Redis: a client it owns, a URL, or the nodes of a Cluster for us to connect. */
export type RedisSpec = RedisClient | string | { cluster: Array<{ host: string; port: number }> };

/** Which client family `value` belongs to, by shape (a caller's copy may be any version), or undefined. */
export function clientFamily(value: unknown): 'ioredis' | 'node-redis' | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.status === 'string' && typeof v.duplicate === 'function' && typeof v.call === 'function')
    return 'ioredis';
  if (isNodeRedisCluster(value)) return 'node-redis';
  if (
    typeof v.isOpen === 'boolean' &&
    typeof v.sendCommand === 'function' &&
    typeof v.duplicate === 'function'
  )
    return 'node-redis';
  return undefined;
}

/** The driver for a spec that resolveOptions has checked. */
export function openDriver(spec: RedisSpec, timeoutMs: number): Driver {
  if (typeof spec === 'string') {
    // Before ioredis reads it: it would throw Node's TypeError, carrying the whole URL, or misread it.
    checkUrl(spec);
    return new IoredisDriver(new Redis(spec, ownedConnection(timeoutMs)), true, timeoutMs, describeUrl(spec));
  }
  if ('cluster' in spec && Array.isArray(spec.cluster)) {
    const cluster = new Cluster(spec.cluster, {
      enableOfflineQueue: false,
      lazyConnect: true,
      redisOptions: ownedConnection(timeoutMs),
    });
    return new IoredisDriver(cluster, true, timeoutMs, `cluster(${spec.cluster.map(addressOf).join(',')})`);
  }
  if (clientFamily(spec) === 'ioredis') {
    const client = spec as IoredisClient;
    return new IoredisDriver(client, false, timeoutMs, describeIoredis(client));
  }
  const client = spec as NodeRedisClient | NodeRedisCluster;
  return new NodeRedisDriver(client, timeoutMs, describeNodeRedis(client));
}

/** Connections we open ourselves fail fast: no offline queue, a connect timeout, background reconnects. */
export function ownedConnection(timeoutMs: number) {
  return {
    enableOfflineQueue: false,
    lazyConnect: true,
    connectTimeout: timeoutMs,
    // No ready check: it sends INFO, which the ACL rule managed services hand out forbids (@dangerous),
    // and ioredis then prints a warning on every connect. What it waits for (a server still loading
    // its data) answers LOADING instead, a typed error naming it.
    enableReadyCheck: false,
    // A command the connection dropped is sent once more on the next one — also after our bound gave up
    // on it: every script is safe to repeat (a claim repeated finds its own lease), and a claim we gave
    // up on is followed by a give-back, sent after it on the same connection.
    maxRetriesPerRequest: 1,
    // No auto-pipelining: in ioredis 6.0.0 a batch cut off by a dropped connection throws an uncaught
    // TypeError (`results[i] is not iterable`), which would crash the application.
    // ioredis arms a timer of this length on disconnect, waiting for a 'close' that a socket which never
    // connected does not emit again: its 2 s default would keep a finished process alive.
    disconnectTimeout: 200,
    // Keep reconnecting in the background, so calls work again as soon as Redis is back.
    retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
  };
}

function addressOf(node: { host?: string; port?: number }): string {
  return `${node.host ?? '127.0.0.1'}:${node.port ?? 6379}`;
}

function describeIoredis(client: IoredisClient): string {
  if ((client as { isCluster?: boolean }).isCluster) {
    const nodes = (client as unknown as { startupNodes?: unknown[] }).startupNodes ?? [];
    return `cluster(${nodes.map((n) => (typeof n === 'object' && n !== null ? addressOf(n) : describeUrl(String(n)))).join(',')})`;
  }
  const { host, port, path } = (client as Redis).options;
  return path ?? `${host}:${port}`;
}

function describeNodeRedis(client: RedisClient): string {
  if (isNodeRedisCluster(client)) {
    return `cluster(${client.masters.map(addressOf).join(',')})`;
  }
  const options = (
    client as { options?: { url?: string; socket?: { host?: string; port?: number; path?: string } } }
  ).options;
  if (options?.socket?.path) return options.socket.path;
  if (options?.socket?.host || options?.socket?.port) return addressOf(options.socket);
  if (options?.url) return describeUrl(options.url);
  return '127.0.0.1:6379';
}
