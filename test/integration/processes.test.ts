import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createOnce } from '../../src/index.js';
import { CLIENT_KINDS } from '../helpers/clients.js';
import { commandStats, diffStats, type RedisServer, startRedis } from '../helpers/redis-server.js';
import { killAllWorkers, Worker } from '../helpers/worker.js';

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis({ name: 'processes' });
});
afterEach(killAllWorkers);
afterAll(async () => {
  await redis.stop();
});

describe.each(CLIENT_KINDS)('many processes, each with %s', (client) => {
  it('runs fn once for 5 processes × 20 concurrent callers, and hands every caller the value', async () => {
    const namespace = `race-${randomUUID()}`;
    const workers = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        Worker.start({
          url: redis.url,
          namespace,
          key: 'migrate:v1',
          nodeId: `node-${i}`,
          callers: 20,
          fnMs: 300,
          client,
        }),
      ),
    );
    for (const worker of workers) worker.go();
    await Promise.all(workers.map((worker) => worker.finished()));

    const starts = workers.flatMap((worker) => worker.fnStarts());
    expect(starts).toHaveLength(1);
    const results = workers.flatMap((worker) => worker.results());
    expect(workers.flatMap((worker) => worker.errors())).toEqual([]);
    expect(results).toHaveLength(100);
    const leader = starts[0]!;
    for (const result of results) {
      expect(result.value).toEqual({ by: leader.nodeId, token: leader.fencingToken });
      expect(result.fencingToken).toBe(leader.fencingToken);
    }
    expect(results.filter((r) => r.role === 'leader')).toHaveLength(1);
    // Every worker exits by itself once its callers are answered and it closed its Once.
    expect(await Promise.all(workers.map((worker) => worker.exited))).toEqual([0, 0, 0, 0, 0]);
  });

  it('answers a fresh process with one script call and no writes, once the key is done', async () => {
    const namespace = `fresh-${randomUUID()}`;
    const first = createOnce({ redis: redis.url, namespace });
    await first.run('warm', () => ({ warmed: true }));
    await first.close();

    const admin = redis.client();
    const before = await commandStats(admin);
    const worker = await Worker.start({
      url: redis.url,
      namespace,
      key: 'warm',
      nodeId: 'fresh',
      callers: 10,
      fnMs: 0,
      client,
    });
    worker.go();
    await worker.finished();
    const diff = diffStats(before, await commandStats(admin));

    expect(worker.fnStarts()).toEqual([]);
    expect(worker.results().map((r) => r.role)).toEqual(Array(10).fill('cached'));
    expect(worker.results()[0]!.value).toEqual({ warmed: true });
    // One claim script for the key (it finds the key done), shared by all ten callers; the only other
    // command is the one-off subscription to resets. Connection set-up (a client's own ready check,
    // HELLO, CLIENT SETINFO) is not ours.
    expect((diff.get('evalsha') ?? 0) + (diff.get('eval') ?? 0)).toBe(1);
    for (const write of ['set', 'hset', 'publish', 'spublish', 'del', 'incr'])
      expect(diff.get(write) ?? 0).toBe(0);
    expect(diff.get('subscribe') ?? 0).toBeLessThanOrEqual(1);
  });
});
