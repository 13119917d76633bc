import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createOnce } from '../../src/index.js';
import { CLIENT_KINDS, type ClientKind } from '../helpers/clients.js';
import { canInjectFaults, type RedisServer, startRedis } from '../helpers/redis-server.js';
import { killAllWorkers, Worker, type WorkerConfig } from '../helpers/worker.js';

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis({ name: 'leader-faults' });
});
afterEach(killAllWorkers);
afterAll(async () => {
  await redis.stop();
});

const LEASE_MS = 1000;

let client: ClientKind = 'url';

function config(namespace: string, nodeId: string, extra: Partial<WorkerConfig> = {}): WorkerConfig {
  return {
    client,
    url: redis.url,
    namespace,
    key: 'migrate',
    nodeId,
    callers: 3,
    fnMs: 200,
    leaseMs: LEASE_MS,
    ...extra,
  };
}

describe.skipIf(!canInjectFaults).each(CLIENT_KINDS)('a leader that dies or stalls, with %s', (kind) => {
  beforeAll(() => {
    client = kind;
  });

  it('is taken over after its lease when SIGKILLed mid-run, with a higher fencing token', async () => {
    const namespace = `crash-${randomUUID()}`;
    const leader = await Worker.start(config(namespace, 'doomed', { fnMs: 30_000 }));
    leader.go();
    const first = await leader.next((e) => e.type === 'fn-start');
    const follower = await Worker.start(config(namespace, 'survivor'));
    follower.go();

    await leader.kill();
    const killedAt = performance.now();
    const takeover = await follower.next(
      (e): e is Extract<typeof e, { type: 'fn-start' }> => e.type === 'fn-start',
    );
    const takeoverMs = performance.now() - killedAt;
    await follower.finished();

    if (first.type !== 'fn-start') throw new Error('unreachable');
    expect(takeover.fencingToken).toBeGreaterThan(first.fencingToken);
    expect(takeover.attempt).toBe(2);
    expect(takeover.previous).toMatchObject({
      owner: 'doomed',
      fencingToken: first.fencingToken,
      outcome: 'crashed',
    });
    // The follower waited for the lease, not longer: it woke at the deadline it was told.
    expect(takeoverMs).toBeLessThan(LEASE_MS + 1000);
    expect(follower.results().map((r) => r.value)).toEqual(
      Array(3).fill({ by: 'survivor', token: takeover.fencingToken }),
    );

    const once = createOnce({ redis: redis.url, namespace });
    try {
      expect(await once.status('migrate')).toMatchObject({ state: 'done', attempts: 2, owner: 'survivor' });
    } finally {
      await once.close();
    }
  });

  it('rejects a paused leader with LeaseLostError after a follower completed, keeping the new value', async () => {
    const namespace = `pause-${randomUUID()}`;
    const stalled = await Worker.start(config(namespace, 'stalled', { fnMs: 30_000, untilAborted: true }));
    stalled.go();
    const first = await stalled.next((e) => e.type === 'fn-start');
    const follower = await Worker.start(config(namespace, 'fresh'));
    follower.go();

    stalled.signal('SIGSTOP');
    await follower.finished(); // takes over once the lease lapses, and completes
    stalled.signal('SIGCONT');
    await stalled.finished();

    expect(stalled.events).toContainEqual({
      type: 'fn-aborted',
      nodeId: 'stalled',
      reason: 'LeaseLostError',
    });
    const errors = stalled.errors();
    // The caller whose fn ran learns it lost the lease; the others in its process then find the value.
    expect(errors).toEqual([expect.objectContaining({ name: 'LeaseLostError' })]);
    const takeover = follower.fnStarts()[0]!;
    if (first.type !== 'fn-start') throw new Error('unreachable');
    expect(takeover.fencingToken).toBeGreaterThan(first.fencingToken);
    expect(stalled.results().map((r) => r.value)).toEqual(
      Array(2).fill({ by: 'fresh', token: takeover.fencingToken }),
    );

    const once = createOnce({ redis: redis.url, namespace });
    try {
      const status = await once.status('migrate');
      expect(status).toMatchObject({ state: 'done', owner: 'fresh', value: { by: 'fresh' } });
    } finally {
      await once.close();
    }
  });
});
