/**
 * The standby renewer (src/renewer) on each topology and client it must reach Redis through: a fn that
 * blocks its event loop for 3 × its lease still completes — complete checks the lease in Redis, so
 * it succeeds only if the lease was renewed while the loop was blocked. And what it costs: no thread
 * for an instance that never leads, none with maxStallMs 0, a warning when it cannot connect.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createOnce, type Once, type OnceOptions } from '../../src/index.js';
import { type ClientKind, connect, connectCluster } from '../helpers/clients.js';
import { type RedisServer, startRedis } from '../helpers/redis-server.js';
import { startCluster } from '../helpers/topologies.js';

const LEASE_MS = 600;
const BLOCK_MS = 3 * LEASE_MS;

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function open(options: OnceOptions): Once {
  const once = createOnce({ leaseMs: LEASE_MS, namespace: `standby-${randomUUID()}`, ...options });
  cleanups.push(() => once.close());
  return once;
}

/** Blocks this thread: no timer, no I/O, no renewal on it can run meanwhile. */
function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // CPU-bound work
  }
}

/**
 * Leads a throwaway key first, and lets the standby's thread finish starting: it starts with a process's
 * first lead and, from these TypeScript sources on a loaded machine, can take most of a 600 ms lease to
 * boot. (The fault tests in test/chaos cover a first lead, with a 1 s lease.)
 */
async function blockedRun(once: Once) {
  await once.run('first-lead', async () => 'thread started');
  await (once as unknown as { standby: { whenReady(): Promise<void> } }).standby.whenReady();
  const result = await once.runDetailed('warm', (ctx) => {
    busy(BLOCK_MS);
    return { aborted: ctx.signal.aborted };
  });
  expect(result).toMatchObject({ role: 'leader', attempt: 1, value: { aborted: false } });
  expect(await once.status('warm')).toMatchObject({ state: 'done', attempts: 1 });
}

/** The instance's standby renewer's thread, if one runs (internals, for the cost checks). */
function renewerThread(once: Once): unknown {
  const standby = (once as unknown as { standby?: { worker?: unknown } }).standby;
  return standby?.worker;
}

describe('on one master', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedis({ name: 'standby' });
  });
  afterAll(async () => {
    await redis.stop();
  });

  const kinds: ClientKind[] = ['url', 'ioredis6', 'ioredis5', 'node-redis6', 'node-redis5'];
  it.each(kinds)(
    '%s: a fn blocking its loop for 3 × the lease completes, its lease renewed meanwhile',
    async (kind) => {
      const client = await connect(kind, redis.url);
      cleanups.push(() => client.close());
      await blockedRun(open({ redis: client.spec }));
    },
  );

  it("a process's first lead, its thread not started yet: with a 2 s lease the thread is up in time", async () => {
    const once = open({ redis: redis.url, leaseMs: 2_000 });
    const result = await once.runDetailed('cold', (ctx) => {
      busy(4_000);
      return { aborted: ctx.signal.aborted };
    });
    expect(result).toMatchObject({ role: 'leader', attempt: 1, value: { aborted: false } });
  });

  it('without the standby (maxStallMs 0) the same fn loses its lease: what the standby changes', async () => {
    const once = open({ redis: redis.url, maxStallMs: 0 });
    await expect(once.run('warm', () => busy(BLOCK_MS))).rejects.toMatchObject({ name: 'LeaseLostError' });
    expect(renewerThread(once)).toBeUndefined();
  });

  it('starts no thread for an instance that only follows, waits or reads; one while it leads', async () => {
    const namespace = `standby-${randomUUID()}`;
    const leader = open({ redis: redis.url, namespace });
    const follower = open({ redis: redis.url, namespace });
    await leader.run('k', async () => 'v');
    expect(renewerThread(leader)).toBeDefined();
    await expect(follower.run('k', async () => 'never')).resolves.toBe('v');
    await expect(follower.wait('k')).resolves.toBe('v');
    await follower.status('k');
    expect(renewerThread(follower)).toBeUndefined();
  });

  it('says once through the logger when it cannot hand the connection to a thread, and leads on without it', async () => {
    const warnings: unknown[] = [];
    const logger = { debug() {}, info() {}, warn: (fields: unknown) => warnings.push(fields), error() {} };
    const { Redis } = await import('ioredis');
    const withFunction = new Redis(redis.url);
    withFunction.on('error', () => {});
    cleanups.push(() => withFunction.disconnect());
    // A connection option that is a function (a NAT map, here) cannot cross to a thread.
    Object.assign(withFunction.options, { natMap: () => ({}) });
    const once = open({ redis: withFunction as never, logger });
    await expect(once.run('k', async () => 'v')).resolves.toBe('v');
    expect(warnings).toEqual([expect.objectContaining({ event: 'renewer-unavailable' })]);
    expect(renewerThread(once)).toBeUndefined();
  });
});

describe('on a Cluster', () => {
  let nodes: RedisServer[];
  beforeAll(async () => {
    nodes = await startCluster('standby-cluster');
  }, 60_000);
  afterAll(async () => {
    await Promise.all(nodes.map((node) => node.stop()));
  });

  const kinds: ClientKind[] = ['url', 'ioredis6', 'node-redis6'];
  it.each(kinds)('%s: a fn blocking its loop for 3 × the lease completes', async (kind) => {
    const client = await connectCluster(
      kind,
      nodes.map((node) => ({ host: node.host, port: node.port })),
    );
    cleanups.push(() => client.close());
    await blockedRun(open({ redis: client.spec }));
  });
});

describe('on a quorum of three masters', () => {
  let masters: RedisServer[];
  beforeAll(async () => {
    masters = await Promise.all([0, 1, 2].map((i) => startRedis({ name: `standby-quorum-${i}` })));
  });
  afterAll(async () => {
    await Promise.all(masters.map((master) => master.stop()));
  });

  it('a fn blocking its loop for 3 × the lease completes: the standby renews on a majority', async () => {
    await blockedRun(open({ quorum: masters.map((master) => master.url) }));
  });

  it('one master down: the standby still renews on the other two', async () => {
    const [first, ...rest] = masters;
    const down = await startRedis({ name: 'standby-quorum-down' });
    await down.stop();
    await blockedRun(open({ quorum: [first!.url, down.url, rest[0]!.url], redisTimeoutMs: 1000 }));
  });
});
