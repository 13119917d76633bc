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
});
