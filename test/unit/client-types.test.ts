/**
 * A caller passes the client they have, as it is, with no cast: each client family's own type is
 * assignable to `redis` (and to a `quorum` entry). `tsc --noEmit` checks this file; the test body
 * only builds the options (no connection is made).
 */
import { Cluster, Redis } from 'ioredis';
import { Redis as Redis5 } from 'ioredis5';
import { createClient, createCluster } from 'redis';
import { createClient as createClient5, createCluster as createCluster5 } from 'redis5';
import { describe, expect, it } from 'vitest';
import type { OnceOptions } from '../../src/index.js';

describe('client types', () => {
  it('takes ioredis 5 and 6, and node-redis 5 and 6 clients and clusters, without a cast', () => {
    const options: OnceOptions[] = [
      { redis: new Redis({ lazyConnect: true }) },
      { redis: new Redis5({ lazyConnect: true }) },
      { redis: new Cluster([], { lazyConnect: true }) },
      { redis: createClient() },
      { redis: createClient({ RESP: 2 }) },
      { redis: createClient5() },
      { redis: createCluster({ rootNodes: [] }) },
      { redis: createCluster5({ rootNodes: [] }) },
      { quorum: [createClient(), new Redis({ lazyConnect: true }), 'redis://127.0.0.1:6379'] },
    ];
    expect(options).toHaveLength(9);
    // The ioredis clients were made lazy; the node-redis ones connect only on connect(): nothing opened.
    for (const option of options) {
      const client = option.redis as { status?: string; disconnect(): void } | undefined;
      if (client?.status !== undefined) client.disconnect();
    }
  });
});
