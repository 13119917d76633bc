import { randomUUID } from 'node:crypto';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOnce } from '../../src/index.js';
import { gate, waitFor } from '../helpers/gate.js';
import { canInjectFaults, type RedisServer } from '../helpers/redis-server.js';
import { startCluster } from '../helpers/topologies.js';

/** Three masters, no replicas, all 16384 slots assigned: the smallest real Redis Cluster. */
describe.skipIf(!canInjectFaults)('Redis Cluster', () => {
  let nodes: RedisServer[];
  beforeAll(async () => {
    nodes = await startCluster('cluster');
  }, 30_000);
  afterAll(async () => {
    await Promise.all(nodes.map((node) => node.stop()));
  });

  it('runs once across nodes whose keys live on different shards, waking followers over sharded pub/sub', async () => {
    const namespace = `c-${randomUUID()}`;
    const spec = { cluster: nodes.map((n) => ({ host: n.host, port: n.port })) };
    const a = createOnce({ redis: spec, namespace, leaseMs: 2000 });
    const client = new Cluster(spec.cluster, { shardedSubscribers: true });
    const b = createOnce({ redis: client, namespace, leaseMs: 2000 });
    try {
      const keys = Array.from({ length: 12 }, (_, i) => `key-${i}`);
      let runs = 0;
      const release = gate();
      const fn = async (ctx: { key: string }) => {
        runs++;
        await release.promise;
        return `value of ${ctx.key}`;
      };
      const calls = keys.flatMap((key) => [a.runDetailed(key, fn), b.runDetailed(key, fn)]);
      // Let every follower subscribe and wait, then release the leaders.
      await waitFor(() => runs === keys.length, { what: 'every key to have a leader' });
      release.open();
      const results = await Promise.all(calls);
      expect(runs).toBe(keys.length);
      for (const [i, key] of keys.entries()) {
        const pair = results.slice(2 * i, 2 * i + 2);
        expect(pair.map((r) => r.value)).toEqual([`value of ${key}`, `value of ${key}`]);
        // The other caller either waited for it or, having come late, found it done.
        expect(pair.filter((r) => r.role === 'leader')).toHaveLength(1);
      }
      expect(await b.status('key-3')).toMatchObject({ state: 'done', value: 'value of key-3' });

      // A follower waiting on its shard's channel wakes on the leader's SPUBLISH.
      const started = gate();
      const finish = gate();
      const leading = a.runDetailed('sharded', async () => {
        started.open();
        await finish.promise;
        return 'woken';
      });
      await started.promise;
      const following = b.runDetailed('sharded', () => 'never');
      const channel = `${namespace}:{sharded}:done`;
      await waitFor(
        async () => {
          const counts = (await client.call('PUBSUB', 'SHARDNUMSUB', channel)) as [string, number];
          return Number(counts[1]) > 0;
        },
        { what: 'the follower to subscribe to its shard channel' },
      );
      finish.open();
      expect(await leading).toMatchObject({ role: 'leader', value: 'woken' });
      expect(await following).toMatchObject({ role: 'follower', value: 'woken' });
      await a.reset('key-3');
      expect(await b.status('key-3')).toMatchObject({ state: 'idle' });
    } finally {
      await Promise.all([a.close(), b.close()]);
      client.disconnect();
    }
  });
});
