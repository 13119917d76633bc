import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOnce } from '../../src/index.js';
import { waitFor } from '../helpers/gate.js';
import { canInjectFaults, type RedisServer, startRedis } from '../helpers/redis-server.js';
import { recordFault } from '../helpers/reliability.js';
import { closedPort } from '../helpers/topologies.js';

/**
 * Sentinel: a master, a replica and one sentinel watching them, all real processes. The sentinel is
 * started here (it needs a config file it can rewrite, which the server helper does not give).
 */
describe.skipIf(!canInjectFaults)('Sentinel', () => {
  let master: RedisServer;
  let replica: RedisServer;
  let sentinel: ChildProcess;
  let sentinelPort: number;
  let dir: string;

  beforeAll(async () => {
    master = await startRedis({ name: 'sentinel-master', args: ['--repl-diskless-sync-delay', '0'] });
    replica = await startRedis({
      name: 'sentinel-replica',
      args: ['--replicaof', master.host, String(master.port), '--repl-diskless-sync-delay', '0'],
    });
    dir = mkdtempSync(join(tmpdir(), 'redis-once-sentinel-'));
    sentinelPort = await closedPort();
    const config = join(dir, 'sentinel.conf');
    writeFileSync(
      config,
      [
        `port ${sentinelPort}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor mymaster ${master.host} ${master.port} 1`,
        'sentinel down-after-milliseconds mymaster 1000',
        'sentinel failover-timeout mymaster 5000',
        '',
      ].join('\n'),
    );
    sentinel = spawn('redis-server', [config, '--sentinel'], { stdio: 'ignore' });
    const probe = new Redis({ port: sentinelPort, lazyConnect: true, retryStrategy: () => 50 });
    probe.on('error', () => {});
    try {
      await waitFor(
        async () => {
          const replicas = (await probe
            .call('SENTINEL', 'REPLICAS', 'mymaster')
            .catch(() => [])) as unknown[];
          return replicas.length > 0;
        },
        { timeoutMs: 15_000, what: 'the sentinel to see the replica' },
      );
    } finally {
      probe.disconnect();
    }
  }, 30_000);

  afterAll(async () => {
    if (sentinel.exitCode === null) {
      sentinel.kill('SIGKILL');
      await once(sentinel, 'exit');
    }
    await Promise.all([replica.stop(), master.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  function client(): Redis {
    return new Redis({ sentinels: [{ host: '127.0.0.1', port: sentinelPort }], name: 'mymaster' });
  }

  it('runs once through Sentinel, and keeps the done state and rising tokens across a failover', async () => {
    const namespace = `s-${randomUUID()}`;
    const clients = [client(), client()];
    const [a, b] = clients.map((redis) =>
      createOnce({ redis, namespace, leaseMs: 2000, replicaAck: { replicas: 1, timeoutMs: 1000 } }),
    );
    try {
      let runs = 0;
      const tokens: number[] = [];
      const fn = (ctx: { fencingToken: number }) => {
        runs++;
        tokens.push(ctx.fencingToken);
        return { schema: 1 };
      };
      expect(await Promise.all([a!.run('m', fn), b!.run('m', fn)])).toEqual([{ schema: 1 }, { schema: 1 }]);
      expect(runs).toBe(1);

      // The replica acknowledged the done state (replicaAck), so promoting it loses nothing.
      const admin = new Redis({ port: sentinelPort });
      try {
        // The sentinel refuses (NOGOODSLAVE) until it has a fresh report from the replica: ask again.
        await waitFor(
          () =>
            admin.call('SENTINEL', 'FAILOVER', 'mymaster').then(
              () => true,
              () => false,
            ),
          { timeoutMs: 15_000, intervalMs: 200, what: 'the sentinel to accept the failover' },
        );
        await waitFor(
          async () => {
            const [, port] = (await admin.call(
              'SENTINEL',
              'GET-MASTER-ADDR-BY-NAME',
              'mymaster',
            )) as string[];
            return Number(port) === replica.port;
          },
          { timeoutMs: 15_000, what: 'the replica to be promoted' },
        );
      } finally {
        admin.disconnect();
      }
      await expect
        .poll(() => b!.status('m').catch(() => undefined), { timeout: 15_000 })
        .toMatchObject({
          state: 'done',
          value: { schema: 1 },
        });
      await b!.reset('m');
      expect(await b!.run('m', fn)).toEqual({ schema: 1 });
      expect(runs).toBe(2);
      expect(tokens[1]).toBeGreaterThan(tokens[0]!);
    } finally {
      await Promise.all([a!.close(), b!.close()]);
      for (const redis of clients) redis.disconnect();
    }
  }, 45_000);

  it('keeps every value the one the key is done with through a failover while followers wait', async () => {
    const namespace = `sw-${randomUUID()}`;
    const clients = [client(), client(), client()];
    const [leader, ...followers] = clients.map((redis) =>
      createOnce({
        redis,
        namespace,
        leaseMs: 8000,
        redisTimeoutMs: 6000,
        replicaAck: { replicas: 1, timeoutMs: 1000 },
      }),
    );
    const admin = new Redis({ port: sentinelPort });
    try {
      const runs: number[] = [];
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      const fn = async (ctx: { fencingToken: number }) => {
        runs.push(ctx.fencingToken);
        if (runs.length === 1) await held;
        return ctx.fencingToken;
      };
      const leading = leader!.runDetailed('k', fn).catch((e: unknown) => e);
      await waitFor(() => runs.length === 1, { what: 'the leader to start' });
      const waiting = followers.map((f) => f!.runDetailed('k', fn).catch((e: unknown) => e));
      const masterPort = async () =>
        Number(((await admin.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', 'mymaster')) as string[])[1]);
      const before = await masterPort();
      // The followers wait on the old master before it steps down.
      const old = new Redis({ port: before });
      await waitFor(
        async () =>
          Number(((await old.pubsub('NUMSUB', `${namespace}:{k}:done`)) as [string, number])[1]) === 2,
        {
          what: 'the followers to subscribe',
        },
      );
      old.disconnect();
      const faultAt = performance.now();
      await waitFor(
        () =>
          admin.call('SENTINEL', 'FAILOVER', 'mymaster').then(
            () => true,
            () => false,
          ),
        { timeoutMs: 15_000, intervalMs: 200, what: 'the sentinel to accept the failover' },
      );
      await waitFor(async () => (await masterPort()) !== before, {
        timeoutMs: 15_000,
        what: 'the promotion',
      });
      release();
      const results = await Promise.all([leading, ...waiting]);
      const settleMs = performance.now() - faultAt;
      const errors = results.filter((r): r is Error => r instanceof Error);
      const values = results.flatMap((r) => (r instanceof Error ? [] : [(r as { value: number }).value]));
      // The claim was acknowledged by the replica (replicaAck): the run goes on on the new master.
      expect(errors.map((e) => `${e.name}: ${e.message}`)).toEqual([]);
      expect(runs).toHaveLength(1);
      expect(values).toEqual([runs[0], runs[0], runs[0]]);
      await expect
        .poll(() => followers[0]!.status('k').catch(() => undefined), { timeout: 15_000 })
        .toMatchObject({ state: 'done', value: runs[0] });
      recordFault({
        id: 'sentinel-failover',
        runs: 1,
        callers: 3,
        executions: runs.length,
        done: 1,
        staleRefused: 0,
        settled: results.length,
        worstSettleMs: settleMs,
      });
    } finally {
      admin.disconnect();
      await Promise.all([leader!.close(), ...followers.map((f) => f!.close())]);
      for (const redis of clients) redis.disconnect();
    }
  }, 60_000);
});
