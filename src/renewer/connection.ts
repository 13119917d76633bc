/**
 * How the standby renewer reaches the Redis a Once instance uses, as data a worker thread can receive
 * (a client object cannot cross threads). The thread opens its own ioredis connection from it.
 *
 * Read from what the caller gave: a URL or Cluster nodes as they are; a caller's ioredis or node-redis
 * client by the connection fields of its options (address, credentials, database, TLS, Sentinel).
 * What cannot be copied (a TLS option that is a function, a credentials provider, a client that keeps
 * no options) gives a reason instead, and the instance renews on its own thread only.
 */
import { clientFamily, type RedisSpec } from '../drivers/index.js';

export type RenewerConnection =
  | { kind: 'url'; url: string }
  | { kind: 'redis'; options: Record<string, unknown> }
  | {
      kind: 'cluster';
      nodes: unknown[];
      /** What every master's connection uses: ioredis connects to those CLUSTER SLOTS names with it. */
      redisOptions: Record<string, unknown>;
      /** The Cluster's own connection options (an address map). */
      clusterOptions: Record<string, unknown>;
    };

export type Derived = { connection: RenewerConnection } | { unsupported: string };

/** ioredis RedisOptions fields that say where and as whom to connect; nothing about behaviour. */
const IOREDIS_FIELDS = [
  'host',
  'port',
  'path',
  'family',
  'username',
  'password',
  'db',
  'tls',
  'keyPrefix',
  'sentinels',
  'name',
  'role',
  'sentinelUsername',
  'sentinelPassword',
  'sentinelTLS',
  'enableTLSForSentinelMode',
  'natMap',
] as const;

export function renewerConnection(spec: RedisSpec): Derived {
  if (typeof spec === 'string') return { connection: { kind: 'url', url: spec } };
  if (typeof spec === 'object' && spec !== null && 'cluster' in spec && Array.isArray(spec.cluster)) {
    return cloned({ kind: 'cluster', nodes: spec.cluster, redisOptions: {}, clusterOptions: {} });
  }
  const family = clientFamily(spec);
  if (family === 'ioredis') return fromIoredis(spec as unknown as IoredisShape);
  if (family === 'node-redis') return fromNodeRedis(spec as unknown as NodeRedisShape);
  return { unsupported: 'an unknown client' };
}

interface IoredisShape {
  isCluster?: boolean;
  options?: Record<string, unknown> & { redisOptions?: Record<string, unknown> };
  startupNodes?: unknown[];
}

function fromIoredis(client: IoredisShape): Derived {
  if (client.isCluster) {
    const nodes = client.startupNodes ?? [];
    const natMap = client.options?.natMap;
    return cloned({
      kind: 'cluster',
      nodes,
      redisOptions: pick(client.options?.redisOptions ?? {}),
      clusterOptions: natMap === undefined ? {} : { natMap },
    });
  }
  if (!client.options) return { unsupported: 'an ioredis client without options' };
  return cloned({ kind: 'redis', options: pick(client.options) });
}

interface NodeRedisShape {
  options?: NodeRedisOptions;
  // A node-redis cluster keeps its options here.
  _options?: { rootNodes?: NodeRedisOptions[]; defaults?: NodeRedisOptions };
  masters?: unknown[];
}

interface NodeRedisOptions {
  url?: string;
  socket?: Record<string, unknown> & { host?: string; port?: number; path?: string; tls?: boolean };
  username?: string;
  password?: string;
  database?: number;
  credentialsProvider?: { type?: string };
}

function fromNodeRedis(client: NodeRedisShape): Derived {
  if (Array.isArray(client.masters)) {
    const options = (client as { options?: NodeRedisShape['_options'] }).options ?? client._options;
    const roots = options?.rootNodes ?? [];
    const defaults = options?.defaults ?? {};
    const merged: Array<Record<string, unknown>> = [];
    for (const root of roots) {
      const derived = ioredisOptions({
        ...defaults,
        ...root,
        socket: { ...defaults.socket, ...root.socket },
      });
      if ('unsupported' in derived) return derived;
      merged.push(derived.options);
    }
    if (merged.length === 0) return { unsupported: 'a node-redis cluster without root nodes' };
    // The masters CLUSTER SLOTS names are reached with redisOptions alone: TLS and credentials go there
    // (the first root's, as node-redis applies `defaults` to every node).
    const { host: _host, port: _port, path: _path, ...redisOptions } = merged[0]!;
    return cloned({
      kind: 'cluster',
      nodes: merged.map(({ host, port }) => ({ host, port })),
      redisOptions,
      clusterOptions: {},
    });
  }
  if (!client.options) return { unsupported: 'a node-redis client without options' };
  const derived = ioredisOptions(client.options);
  return 'unsupported' in derived ? derived : cloned({ kind: 'redis', options: derived.options });
}

/** node-redis client options, as the ioredis options that reach the same server as the same user. */
function ioredisOptions(
  options: NodeRedisOptions,
): { options: Record<string, unknown> } | { unsupported: string } {
  // node-redis turns username/password into a basic provider itself; any other kind is code.
  if (options.credentialsProvider && options.credentialsProvider.type !== 'async-credentials-provider') {
    return { unsupported: 'a node-redis credentials provider' };
  }
  const out: Record<string, unknown> = {};
  if (options.url) {
    const url = new URL(options.url);
    out.host = url.hostname.replace(/^\[|\]$/g, '');
    out.port = Number(url.port || 6379);
    if (url.username) out.username = decodeURIComponent(url.username);
    if (url.password) out.password = decodeURIComponent(url.password);
    const db = url.pathname.replace(/^\//, '');
    if (db) out.db = Number(db);
    if (url.protocol === 'rediss:') out.tls = {};
  }
  const socket = options.socket ?? {};
  if (socket.path) out.path = socket.path;
  if (socket.host) out.host = socket.host;
  if (socket.port) out.port = socket.port;
  if (socket.tls) {
    const { host: _h, port: _p, path: _path, tls: _t, reconnectStrategy: _r, ...tls } = socket;
    out.tls = { ...((out.tls as object) ?? {}), ...tls };
  }
  Object.assign(out, credentialsOf(options));
  if (options.database !== undefined) out.db = options.database;
  return { options: out };
}

function credentialsOf(options: NodeRedisOptions): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (options.username !== undefined) out.username = options.username;
  if (options.password !== undefined) out.password = options.password;
  return out;
}

function pick(options: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of IOREDIS_FIELDS) if (options[field] !== undefined) out[field] = options[field];
  return out;
}

/** The connection, if it can cross to a thread as it is (a function in TLS options cannot). */
function cloned(connection: RenewerConnection): Derived {
  try {
    return { connection: structuredClone(connection) };
  } catch {
    return { unsupported: 'connection options that hold functions (TLS callbacks?)' };
  }
}
