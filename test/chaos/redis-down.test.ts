import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOnce, LeaseLostError, RedisUnavailableError } from '../../src/index.js';
import { gate } from '../helpers/gate.js';
import { canInjectFaults, type RedisServer, startRedis } from '../helpers/redis-server.js';
import { closedPort } from '../helpers/topologies.js';

const run = promisify(execFile);

describe('Redis unreachable', () => {
  it('rejects with RedisUnavailableError within redisTimeoutMs, and the process exits by itself', async () => {
    const port = await closedPort();
    const main = fileURLToPath(new URL('../helpers/unavailable-main.ts', import.meta.url));
    const loader = fileURLToPath(new URL('../../scripts/register-lua.mjs', import.meta.url));
    const t0 = performance.now();
    const { stdout } = await run(
      process.execPath,
      ['--import', 'tsx', '--import', loader, main, `redis://127.0.0.1:${port}`],
      {
        timeout: 15_000,
      },
    );
    const outcome = JSON.parse(stdout.trim()) as { name: string; ms: number };
    expect(outcome.name).toBe('RedisUnavailableError');
    expect(outcome.ms).toBeLessThan(1500);
    expect(performance.now() - t0).toBeLessThan(6000);
  });

  it('bounds status and reset too, and says which option sets the bound', async () => {
    const once = createOnce({ redis: `redis://127.0.0.1:${await closedPort()}`, redisTimeoutMs: 300 });
    try {
      const error = await once.status('k').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RedisUnavailableError);
      expect((error as Error).message).toContain('redisTimeoutMs');
      await expect(once.reset('k')).rejects.toBeInstanceOf(RedisUnavailableError);
    } finally {
      await once.close();
    }
  });
});

describe.skipIf(!canInjectFaults)('Redis dies under a running leader', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedis({ name: 'redis-down' });
  });
  afterAll(async () => {
    await redis.stop();
  });

  it('aborts ctx.signal before the lease could expire, and the leader rejects with LeaseLostError', async () => {
    const leaseMs = 900;
    const once = createOnce({
      redis: redis.url,
      namespace: `down-${randomUUID()}`,
      leaseMs,
      redisTimeoutMs: 200,
    });
    const started = gate<number>();
    let abortedAfter = -1;
    const leaderRun = once.run('migrate', async (ctx) => {
      const t0 = performance.now();
      started.open(t0);
      await new Promise<void>((resolve) =>
        ctx.signal.addEventListener('abort', () => {
          abortedAfter = performance.now() - t0;
          resolve();
        }),
      );
      return 'unrecorded';
    });
    await started.promise;
    await redis.pause(); // renewals go unanswered from now on
    try {
      await expect(leaderRun).rejects.toBeInstanceOf(LeaseLostError);
      expect(abortedAfter).toBeGreaterThan(0);
      expect(abortedAfter).toBeLessThan(leaseMs);
    } finally {
      await redis.resume();
      await once.close();
    }
  });

  it('keeps fencing tokens rising after Redis restarts empty (floored at the server clock)', async () => {
    const namespace = `restart-${randomUUID()}`;
    const tokens: number[] = [];
    const first = createOnce({ redis: redis.url, namespace });
    await first.run('k', (ctx) => tokens.push(ctx.fencingToken));
    await first.close();
    await redis.kill();
    await redis.restart();
    const second = createOnce({ redis: redis.url, namespace });
    try {
      await second.run('k', (ctx) => tokens.push(ctx.fencingToken));
    } finally {
      await second.close();
    }
    expect(tokens).toHaveLength(2);
    expect(tokens[1]).toBeGreaterThan(tokens[0]!);
  });
});

describe.skipIf(!canInjectFaults)('Redis dies under a waiting follower', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedis({ name: 'redis-down-follower' });
  });
  afterAll(async () => {
    await redis.stop();
  });

  it('fails the follower with RedisUnavailableError within redisTimeoutMs, not at the lease deadline', async () => {
    const namespace = `down-${randomUUID()}`;
    const leader = createOnce({ redis: redis.url, namespace, leaseMs: 60_000, redisTimeoutMs: 300 });
    const follower = createOnce({ redis: redis.url, namespace, leaseMs: 60_000, redisTimeoutMs: 300 });
    const started = gate();
    const leading = leader.run('slow', async (ctx) => {
      started.open();
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
    });
    leading.catch(() => {});
    try {
      await started.promise;
      // Observed from the start: it may reject while the kill is still being awaited.
      const waiting = follower.runDetailed('slow', () => 'never').catch((error: unknown) => error);
      await expect.poll(async () => (await follower.status('slow')).state).toBe('running');
      const t0 = performance.now();
      await redis.kill();
      expect(await waiting).toBeInstanceOf(RedisUnavailableError);
      expect(performance.now() - t0).toBeLessThan(2000);
    } finally {
      await Promise.all([leader.close(), follower.close()]);
    }
  });
});
