import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createOnce } from '../../src/index.js';
import { CLIENT_KINDS, type ClientKind } from '../helpers/clients.js';
import { startProxy } from '../helpers/proxy.js';
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

  it('keeps its lease through a synchronous block of 3 × its lease (the standby renewer): fn runs once, nobody takes over', async () => {
    const namespace = `busy-${randomUUID()}`;
    const busy = await Worker.start(
      config(namespace, 'busy', { blockMs: 3 * LEASE_MS, fnMs: 0, warmUp: true }),
    );
    const follower = await Worker.start(config(namespace, 'waiting'));
    busy.go();
    const first = await busy.next((e) => e.type === 'fn-start');
    follower.go();
    await Promise.all([busy.finished(), follower.finished()]);

    if (first.type !== 'fn-start') throw new Error('unreachable');
    expect(follower.fnStarts()).toEqual([]);
    expect(busy.fnStarts()).toHaveLength(1);
    expect([...busy.errors(), ...follower.errors()]).toEqual([]);
    expect(busy.events.filter((e) => e.type === 'fn-aborted')).toEqual([]);
    const value = { by: 'busy', token: first.fencingToken };
    expect([...busy.results(), ...follower.results()].map((r) => r.value)).toEqual(Array(6).fill(value));
    expect(follower.results().map((r) => r.role)).toEqual(['follower', 'follower', 'follower']);
  });

  it('loses its lease when blocked past maxStallMs (a wedged loop): a follower takes over, as without the standby', async () => {
    const namespace = `wedged-${randomUUID()}`;
    const wedged = await Worker.start(
      config(namespace, 'wedged', { blockMs: 3 * LEASE_MS, fnMs: 0, maxStallMs: LEASE_MS / 2, warmUp: true }),
    );
    const follower = await Worker.start(config(namespace, 'fresh'));
    wedged.go();
    const first = await wedged.next((e) => e.type === 'fn-start');
    follower.go();
    await Promise.all([wedged.finished(), follower.finished()]);

    if (first.type !== 'fn-start') throw new Error('unreachable');
    const takeover = follower.fnStarts()[0]!;
    expect(takeover).toMatchObject({ attempt: 2, previous: { owner: 'wedged', outcome: 'crashed' } });
    expect(takeover.fencingToken).toBeGreaterThan(first.fencingToken);
    expect(wedged.errors().map((e) => e.name)).toEqual(['LeaseLostError']);
    expect(wedged.results().map((r) => r.value)).toEqual(
      Array(2).fill({ by: 'fresh', token: takeover.fencingToken }),
    );
  });

  it('loses its lease when blocked while Redis is unreachable for the renewer too: taken over, fn told when it returns', async () => {
    const namespace = `cutoff-${randomUUID()}`;
    const proxy = await startProxy(redis);
    try {
      // fn blocks long enough for the proxy to be black-holed before the standby's first renewal.
      const busy = await Worker.start(
        config(namespace, 'cutoff', {
          url: proxy.url,
          blockMs: 3 * LEASE_MS,
          fnMs: 0,
          redisTimeoutMs: 500,
          warmUp: true,
        }),
      );
      const follower = await Worker.start(config(namespace, 'fresh'));
      busy.go();
      const first = await busy.next((e) => e.type === 'fn-start');
      proxy.set({ kind: 'blackhole' });
      follower.go();
      await follower.finished();
      proxy.set({ kind: 'pass' });
      await busy.finished();

      if (first.type !== 'fn-start') throw new Error('unreachable');
      const takeover = follower.fnStarts()[0]!;
      expect(takeover).toMatchObject({ attempt: 2, previous: { owner: 'cutoff', outcome: 'crashed' } });
      expect(busy.events).toContainEqual({ type: 'fn-aborted', nodeId: 'cutoff', reason: 'LeaseLostError' });
      expect(busy.errors().map((e) => e.name)).toEqual(['LeaseLostError']);
    } finally {
      await proxy.close();
    }
  });
});
