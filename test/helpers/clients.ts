/**
 * The clients a user may pass, as they would pass them: the integration suites run against each
 * (a matrix), on real redis-server processes.
 *
 *   url              a redis:// URL: redis-once opens (and closes) its own ioredis connection
 *   ioredis6         ioredis 6, RESP3 (its default)
 *   ioredis6-resp2   ioredis 6 with `protocol: 2`
 *   ioredis5         ioredis 5 (RESP2)
 *   node-redis6      node-redis 6, RESP3 (its default)
 *   node-redis6-resp2 node-redis 6 with `RESP: 2`
 *   node-redis5      node-redis 5 (RESP2, its default)
 *
 * `REDIS_ONCE_CLIENTS=url,node-redis6 npm test` narrows the matrix.
 */
import { Cluster as Cluster6, Redis as Redis6 } from 'ioredis';
import { Cluster as Cluster5, Redis as Redis5 } from 'ioredis5';
import { createClient as createClient6, createCluster as createCluster6 } from 'redis';
import { createClient as createClient5, createCluster as createCluster5 } from 'redis5';
import type { RedisSpec } from '../../src/index.js';

export const ALL_CLIENT_KINDS = [
  'url',
  'ioredis6',
  'ioredis6-resp2',
  'ioredis5',
  'node-redis6',
  'node-redis6-resp2',
  'node-redis5',
] as const;
export type ClientKind = (typeof ALL_CLIENT_KINDS)[number];

export const CLIENT_KINDS: ClientKind[] = (() => {
  const wanted = process.env.REDIS_ONCE_CLIENTS?.split(',').map((s) => s.trim());
  if (!wanted) return [...ALL_CLIENT_KINDS];
  return ALL_CLIENT_KINDS.filter((kind) => wanted.includes(kind));
})();

export interface Connected {
  /** What the test passes as `redis`. */
  spec: RedisSpec;
  /** Closes the client the test opened (the caller owns it; redis-once never closes it). */
  close(): Promise<void>;
}

/** A client of `kind` for the server at `url`, connected (node-redis) or connecting (ioredis). */
export async function connect(kind: ClientKind, url: string): Promise<Connected> {
  switch (kind) {
    case 'url':
      return { spec: url, close: async () => {} };
    case 'ioredis6':
    case 'ioredis6-resp2':
    case 'ioredis5': {
      const client =
        kind === 'ioredis5'
          ? new Redis5(url)
          : new Redis6(url, kind === 'ioredis6-resp2' ? { protocol: 2 } : {});
      client.on('error', () => {});
      return { spec: client as never, close: async () => void client.disconnect() };
    }
    case 'node-redis6':
    case 'node-redis6-resp2':
    case 'node-redis5': {
      const client =
        kind === 'node-redis5'
          ? createClient5({ url })
          : createClient6({ url, ...(kind === 'node-redis6-resp2' ? { RESP: 2 as const } : {}) });
      client.on('error', () => {});
      await client.connect();
      return { spec: client as never, close: async () => destroy(client) };
    }
  }
}

/** A Cluster client of `kind` for the given nodes (`url` means `{ cluster: nodes }`, opened by us). */
export async function connectCluster(
  kind: ClientKind,
  nodes: Array<{ host: string; port: number }>,
): Promise<Connected> {
  switch (kind) {
    case 'url':
      return { spec: { cluster: nodes }, close: async () => {} };
    case 'ioredis6':
    case 'ioredis6-resp2':
    case 'ioredis5': {
      const client =
        kind === 'ioredis5'
          ? new Cluster5(nodes)
          : new Cluster6(nodes, kind === 'ioredis6-resp2' ? { redisOptions: { protocol: 2 } } : {});
      client.on('error', () => {});
      return { spec: client as never, close: async () => void client.disconnect() };
    }
    case 'node-redis6':
    case 'node-redis6-resp2':
    case 'node-redis5': {
      const rootNodes = nodes.map((n) => ({ url: `redis://${n.host}:${n.port}` }));
      const client =
        kind === 'node-redis5'
          ? createCluster5({ rootNodes })
          : createCluster6({ rootNodes, ...(kind === 'node-redis6-resp2' ? { RESP: 2 as const } : {}) });
      client.on('error', () => {});
      await client.connect();
      return { spec: client as never, close: async () => destroy(client) };
    }
  }
}

function destroy(client: { isOpen: boolean; destroy(): unknown }): void {
  // destroy(), not close(): close waits for replies a stopped server never sends.
  if (client.isOpen) client.destroy();
}
