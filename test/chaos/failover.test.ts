/**
 * Failovers while followers wait: a Redis Cluster master SIGKILLed and its replica promoted, under a
 * leader at work and followers subscribed (sharded pub/sub) on that master. What must hold: the key is
 * done once, with the value every caller gets; a second run, if the failover lost the lease, has a
 * higher token. Recorded for docs/RELIABILITY.md.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createOnce, type Once, type OnceContext } from '../../src/index.js';
import { waitFor } from '../helpers/gate.js';
import { canInjectFaults, type RedisServer } from '../helpers/redis-server.js';
import { recordFault } from '../helpers/reliability.js';
import { startCluster } from '../helpers/topologies.js';

describe.skipIf(!canInjectFaults)('Redis Cluster: a master killed, its replica promoted', () => {
  let nodes: RedisServer[];
  const onces: Once[] = [];
  // A cluster of its own per test: the one before lost a master for good.
  beforeEach(async () => {
    nodes = await startCluster('failover', { replicas: 1 });
  }, 60_000);
  afterEach(async () => {
    await Promise.all(onces.splice(0).map((once) => once.close()));
    await Promise.all(nodes.map((node) => node.stop()));
  });

  function open(namespace: string, replicaAck: boolean): Once {
    const once = createOnce({
      redis: { cluster: nodes.map((n) => ({ host: n.host, port: n.port })) },
      namespace,
      ...(replicaAck ? { replicaAck: { replicas: 1, timeoutMs: 1000 } } : {}),
      // The failover takes cluster-node-timeout (2 s) and an election: the bounds leave room for it.
      leaseMs: 8_000,
      redisTimeoutMs: 6_000,
      waitTimeoutMs: 30_000,
    });
    onces.push(once);
    return once;
  }

  /** The master that serves `name`'s slot, from CLUSTER SLOTS as a live node sees it. */
  async function masterOf(name: string): Promise<RedisServer> {
    for (const node of nodes) {
      if (node.pid === undefined) continue;
      const admin = new Redis(node.port, { host: node.host, lazyConnect: true });
      try {
        await admin.connect();
        const slot = Number(await admin.call('CLUSTER', 'KEYSLOT', name));
        const ranges = (await admin.call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number]]>;
        const range = ranges.find(([start, end]) => start <= slot && slot <= end)!;
        return nodes.find((n) => n.port === Number(range[2][1]))!;
      } finally {
        admin.disconnect();
      }
    }
    throw new Error('no live node');
  }

  it.each([
    { replicaAck: true, what: 'with replicaAck: the replica has the claim, so the run goes on there' },
    {
      replicaAck: false,
      what: 'without: the claim may not have reached the replica, and the key may run again',
    },
  ])(
    'keeps every value the one the key is done with when the master of its slot dies mid-run ($what)',
    async ({ replicaAck }) => {
      const namespace = `failover-${randomUUID()}`;
      const key = 'migrate';
      const leader = open(namespace, replicaAck);
      const followers = [open(namespace, replicaAck), open(namespace, replicaAck)];
      const runs: Array<{ token: number; attempt: number }> = [];
      let releaseFirst!: () => void;
      const firstMayEnd = new Promise<void>((resolve) => (releaseFirst = resolve));
      const fn = async (ctx: OnceContext) => {
        runs.push({ token: ctx.fencingToken, attempt: ctx.attempt });
        if (runs.length === 1) await firstMayEnd;
        return ctx.fencingToken;
      };
      const leading = leader.runDetailed(key, fn).catch((e: unknown) => e);
      await waitFor(() => runs.length === 1, { what: 'the leader to start' });
      const waiting = followers.map((f) => f.runDetailed(key, fn).catch((e: unknown) => e));
      const master = await masterOf(`${namespace}:{${key}}:state`);
      // The followers are subscribed there (sharded pub/sub) before the master dies.
      const probe = new Redis(master.port, { host: master.host });
      await waitFor(
        async () =>
          Number(
            (
              (await probe.call('PUBSUB', 'SHARDNUMSUB', `${namespace}:{${key}}:done`)) as [string, number]
            )[1],
          ) === 2,
        {
          what: 'the followers to subscribe',
        },
      );
      probe.disconnect();

      await master.kill();
      const faultAt = performance.now();
      // The replica is promoted once the other masters agree the old one is gone (cluster-node-timeout).
      await waitFor(async () => (await masterOf(`${namespace}:{${key}}:state`)) !== master, {
        timeoutMs: 20_000,
        what: 'the replica to be promoted',
      });
      releaseFirst();
      const results = await Promise.all([leading, ...waiting]);
      const settleMs = performance.now() - faultAt;

      const values = results.flatMap((r) => (r instanceof Error ? [] : [(r as { value: number }).value]));
      const errors = results.filter((r): r is Error => r instanceof Error);
      // Every caller that got a value got the same one; a second run (the lease lost with the master)
      // has a higher token, and its value is the one.
      if (replicaAck) {
        // The claim was acknowledged by the replica before fn started: the promoted replica holds the
        // lease and the state, and the leader completes there.
        expect(errors.map((e) => `${e.name}: ${e.message}`)).toEqual([]);
        expect(runs).toHaveLength(1);
      }
      // Replication is asynchronous: without replicaAck the promoted replica may lack the claim. Then a
      // follower runs it again (a higher token, floored at the server clock), the first leader's value
      // is refused (LeaseLostError), and every value handed out is the second run's.
      expect(new Set(values).size).toBe(1);
      expect(runs.length).toBeLessThanOrEqual(2);
      if (runs.length === 2) expect(runs[1]!.token).toBeGreaterThan(runs[0]!.token);
      expect(values[0]).toBe(runs.at(-1)!.token);
      for (const error of errors) expect(error.name).toMatch(/^(LeaseLost|RedisUnavailable)Error$/);
      const status = await followers[0]!.status(key);
      expect(status).toMatchObject({ state: 'done', value: values[0] });
      recordFault({
        id: replicaAck ? 'cluster-failover-replica-ack' : 'cluster-failover',
        runs: 1,
        callers: 3,
        executions: runs.length,
        done: 1,
        staleRefused: 0,
        settled: results.length,
        worstSettleMs: settleMs,
      });
    },
    60_000,
  );
});
