import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOnce, OnceInputError } from '../../src/index.js';
import { waitFor } from '../helpers/gate.js';
import { canInjectFaults, type RedisServer, startRedis } from '../helpers/redis-server.js';

describe.skipIf(!canInjectFaults)('replicaAck', () => {
  let master: RedisServer;
  let replica: RedisServer;
  beforeAll(async () => {
    master = await startRedis({ name: 'master', args: ['--repl-diskless-sync-delay', '0'] });
    replica = await startRedis({ name: 'replica', args: ['--replicaof', master.host, String(master.port)] });
    const client = replica.client();
    await waitFor(async () => (await client.info('replication')).includes('master_link_status:up'), {
      timeoutMs: 10_000,
      what: 'the replica to sync',
    });
    client.disconnect();
  });
  afterAll(async () => {
    await Promise.all([replica.stop(), master.stop()]);
  });

  it('returns only once a replica holds the done state', async () => {
    const namespace = `ack-${randomUUID()}`;
    const once = createOnce({ redis: master.url, namespace, replicaAck: { replicas: 1, timeoutMs: 1000 } });
    const onReplica = replica.client();
    try {
      expect(await once.run('k', () => ({ replicated: true }))).toEqual({ replicated: true });
      // No waiting here: WAIT already saw the replica acknowledge the write.
      expect(await onReplica.hget(`${namespace}:{k}:state`, 'status')).toBe('done');
    } finally {
      await once.close();
      onReplica.disconnect();
    }
  });

  it('waits at most timeoutMs when fewer replicas answer, and still runs', async () => {
    const once = createOnce({
      redis: master.url,
      namespace: `ack-${randomUUID()}`,
      replicaAck: { replicas: 2, timeoutMs: 100 },
    });
    try {
      const t0 = performance.now();
      expect(await once.run('k', () => 'done anyway')).toBe('done anyway');
      const took = performance.now() - t0;
      expect(took).toBeGreaterThanOrEqual(190); // two WAITs (after begin and after complete)
      expect(took).toBeLessThan(2000);
    } finally {
      await once.close();
    }
  });

  it('refuses a replicaAck timeout that our own bound would cut short', () => {
    expect(() =>
      createOnce({ redis: master.url, redisTimeoutMs: 500, replicaAck: { replicas: 1, timeoutMs: 500 } }),
    ).toThrow(OnceInputError);
  });
});
