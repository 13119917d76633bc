import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOnce, OnceTimeoutError } from '../../src/index.js';
import { gate } from '../helpers/gate.js';
import { canInjectFaults, type RedisServer, startRedis } from '../helpers/redis-server.js';

describe.skipIf(!canInjectFaults)('a slow or flaky Redis', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedis({ name: 'slow-redis' });
  });
  afterAll(async () => {
    await redis.stop();
  });

  it('keeps the lease when one renewal is answered after its bound (a caller-owned client queues it)', async () => {
    const client = redis.client(); // caller-owned: commands wait in its offline queue, then succeed late
    const admin = redis.client();
    const once = createOnce({
      redis: client,
      namespace: `slow-${randomUUID()}`,
      leaseMs: 1500,
      redisTimeoutMs: 200,
    });
    try {
      const finish = gate();
      let aborted = false;
      const running = once.run('k', async (ctx) => {
        ctx.signal.addEventListener('abort', () => {
          aborted = true;
        });
        // Redis stalls across the first renewal (at 500 ms): its answer comes after our 200 ms bound.
        await admin.client('PAUSE', 700);
        await finish.promise;
        return 'kept';
      });
      // Past the first lease: only renewals that worked can have kept it.
      await new Promise((resolve) => setTimeout(resolve, 2000));
      finish.open();
      expect(await running).toBe('kept');
      expect(aborted).toBe(false);
    } finally {
      await once.close();
    }
  });

  it('ends only the impatient caller’s wait: a caller who joins later still gets the value', async () => {
    const namespace = `join-${randomUUID()}`;
    const leader = createOnce({ redis: redis.url, namespace });
    const follower = createOnce({ redis: redis.url, namespace });
    try {
      const started = gate();
      const finish = gate();
      const leading = leader.run('k', async () => {
        started.open();
        await finish.promise;
        return 'for the patient';
      });
      await started.promise;
      await expect(follower.run('k', () => 'never', { waitTimeoutMs: 50 })).rejects.toBeInstanceOf(
        OnceTimeoutError,
      );
      const patient = follower.runDetailed('k', () => 'never');
      finish.open();
      expect(await leading).toBe('for the patient');
      expect(await patient).toMatchObject({ value: 'for the patient', role: 'follower' });
    } finally {
      await Promise.all([leader.close(), follower.close()]);
    }
  });

  it('forgets what it remembered when its subscriber connection comes back (resets may have been missed)', async () => {
    const namespace = `blip-${randomUUID()}`;
    const p = createOnce({ redis: redis.url, namespace });
    const q = createOnce({ redis: redis.url, namespace });
    const admin = redis.client();
    try {
      expect(await p.run('k', () => 'v1')).toBe('v1');
      await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub'); // drops every subscriber, so resets go unheard
      await q.reset('k');
      expect(await q.run('k', () => 'v2')).toBe('v2');
      await expect.poll(() => p.run('k', () => 'v3'), { timeout: 5000 }).toBe('v2');
    } finally {
      await Promise.all([p.close(), q.close()]);
    }
  });
});
