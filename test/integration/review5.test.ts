/**
 * Fifth review (the standby renewer, cross-process trace links and the OpenTelemetry bridge): each
 * test reproduces one finding against real redis-server processes, and fails on the code as reviewed
 * because of it.
 */
import { randomUUID } from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Redis } from 'ioredis';
import { createCluster } from 'redis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createOnce, type Once, OnceClosedError, OnceForeignValueError } from '../../src/index.js';
import { keyNames } from '../../src/keys.js';
import { enableOpenTelemetry } from '../../src/otel.js';
import { beat, CellPool, endCell, newHeartbeat, STOPPED } from '../../src/renewer/cell.js';
import { renewerConnection } from '../../src/renewer/connection.js';
import type { ThreadConfig, ToThread } from '../../src/renewer/messages.js';
import { newRing } from '../../src/renewer/ring.js';
import { gate } from '../helpers/gate.js';
import { points, type TestTelemetry, testTelemetry } from '../helpers/otel.js';
import { type RedisServer, startRedis } from '../helpers/redis-server.js';

let redis: RedisServer;
let admin: Redis;
const cleanups: Array<() => unknown> = [];

beforeAll(async () => {
  redis = await startRedis({ name: 'review5' });
  admin = redis.client();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(async () => {
  await redis.stop();
});

function ns(): string {
  return `rv5-${randomUUID()}`;
}

function open(options: Parameters<typeof createOnce>[0]): Once {
  const once = createOnce(options);
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
 * Leads throwaway keys, each blocking the loop past its lease, until the standby keeps one: from then
 * on its thread is up and connected (it lingers 5 s after a lease), whatever the machine's load.
 */
async function standbyUp(once: Once, leaseMs: number): Promise<void> {
  for (let i = 0; i < 10; i++) {
    const kept = await once
      .run(`warm-${i}`, () => busy(1.5 * leaseMs), { leaseMs })
      .then(
        () => true,
        () => false,
      );
    if (kept) return;
  }
  throw new Error('the standby renewer never kept a lease through a blocked loop');
}

/** The in-memory SDK with redis-once/otel enabled on it; both undone after the test. */
function telemetryOn(): { telemetry: TestTelemetry; disable: () => void } {
  const telemetry = testTelemetry();
  const disable = enableOpenTelemetry({
    tracerProvider: telemetry.tracerProvider,
    meterProvider: telemetry.meterProvider,
  });
  cleanups.push(() => telemetry.shutdown());
  cleanups.push(disable);
  return { telemetry, disable };
}

/** The sum of leases.held's data points: fns running here now, as the gauge says. */
async function leasesHeld(telemetry: TestTelemetry): Promise<number> {
  return points(await telemetry.metrics(), 'redis_once.leases.held').reduce(
    (sum, point) => sum + Number(point.value),
    0,
  );
}

describe('standby renewer', () => {
  it('close() right after a stall the standby covered does not give up on fn at once (Lease.expiresAt ignores the standby’s renewals): fn settles within the lease and its attempt is recorded as failed', async () => {
    const namespace = ns();
    const LEASE_MS = 1000;
    const once = createOnce({ redis: redis.url, namespace, leaseMs: LEASE_MS });
    const observer = open({ redis: redis.url, namespace });
    cleanups.push(() => once.close());
    await standbyUp(once, LEASE_MS);

    const settled = gate<number>();
    let closing: Promise<number> | undefined;
    let keptLease: boolean | undefined;
    const run = once
      .run('k', async (ctx) => {
        busy(2.5 * LEASE_MS);
        // The standby renewed meanwhile: the lease is still ours (the premise of this test).
        keptLease = !ctx.signal.aborted;
        closing = once.close().then(() => performance.now());
        // fn stops soon after its signal aborts: well within the lease the standby last renewed.
        await sleep(150);
        settled.open(performance.now());
        return 'late';
      })
      .catch((error: unknown) => error);

    expect(await run).toBeInstanceOf(OnceClosedError);
    expect(keptLease, 'the standby kept the lease through the stall').toBe(true);
    const settledAt = await settled.promise;
    const closedAt = await closing!;
    // close() resolves "when each attempt has ended or its lease has expired": here neither had.
    expect(closedAt).toBeGreaterThanOrEqual(settledAt);
    // And the attempt is recorded (its lease released), so a waiter takes over at once.
    expect((await observer.status('k')).state).toBe('failed');
  });

  it('a run whose complete landed reports a lost lease (lease-lost, ctx.signal aborted) when the loop stalls before complete’s reply is read: the lease’s timers — and the standby, which renews after fn settled — run first', async () => {
    const namespace = ns();
    const LEASE_MS = 1000;
    const once = open({ redis: redis.url, namespace, leaseMs: LEASE_MS });
    await once.run('warm', async () => 'w');

    const lost: unknown[] = [];
    const done: unknown[] = [];
    const onLost = (message: unknown) => lost.push(message);
    const onDone = (message: unknown) => done.push(message);
    diagnostics.subscribe('redis-once:lease-lost', onLost);
    diagnostics.subscribe('redis-once:done', onDone);
    cleanups.push(() => {
      diagnostics.unsubscribe('redis-once:lease-lost', onLost);
      diagnostics.unsubscribe('redis-once:done', onDone);
    });

    let signal: AbortSignal | undefined;
    const value = await once.run('k', (ctx) => {
      signal = ctx.signal;
      // Other work of the application blocks the loop once fn has returned, before complete's reply.
      setImmediate(() => busy(2 * LEASE_MS));
      return 'v';
    });

    expect(value).toBe('v');
    expect(done).toHaveLength(1);
    expect(lost).toEqual([]);
    expect(signal!.aborted).toBe(false);
  });

  it('the standby’s connection keeps ioredis’ ready check (INFO): under a managed service’s ACL (-@dangerous) every thread start prints a console warning, though redis-once is silent without a logger', async () => {
    const namespace = ns();
    const name = `rv5-${randomUUID().slice(0, 8)}`;
    await admin.call(
      'ACL',
      'SETUSER',
      name,
      'reset',
      'on',
      `>${name}-pass`,
      'resetkeys',
      `~${namespace}:*`,
      'resetchannels',
      `&${namespace}:*`,
      '+@all',
      '-@dangerous',
      '-@admin',
    );
    cleanups.push(() => admin.call('ACL', 'DELUSER', name));
    const written: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation(((chunk: unknown, ...rest: never[]) => {
      written.push(String(chunk));
      return write(chunk as string, ...rest);
    }) as never);
    cleanups.push(() => spy.mockRestore());
    const once = createOnce({
      redis: `redis://${name}:${name}-pass@127.0.0.1:${redis.port}`,
      namespace,
      leaseMs: 1000,
    });
    cleanups.push(() => once.close());
    // The thread's connection is up (its ready check done) once the standby has kept a lease.
    await standbyUp(once, 1000);
    await once.close(); // ends the thread: what it printed has reached this thread
    expect(written.join('')).not.toMatch(/ready check/);
  });

  it('the standby thread spins on 1 ms timers while a lease is overdue and the leader is awake (or wedged): schedule() waits `max(0, due − now)`, i.e. 0, once due has passed', async () => {
    // The renewer thread as standby.ts starts it from the sources, with setTimeout counted inside it.
    const counter = new Int32Array(new SharedArrayBuffer(4));
    const here = import.meta.url;
    const tsx = createRequire(here)
      .resolve('tsx/esm/api')
      .replace(/\.cjs$/, '.mjs');
    const lua = new URL('../../scripts/register-lua.mjs', here).href;
    const thread = new URL('../../src/renewer/thread.ts', here).href;
    const boot = `
      const { workerData } = await import('node:worker_threads');
      // Counts timer callbacks run, whichever kind of timer.
      for (const name of ['setTimeout', 'setInterval']) {
        const original = globalThis[name];
        globalThis[name] = (fn, ms, ...args) =>
          original((...a) => {
            Atomics.add(workerData.counter, 0, 1);
            return fn(...a);
          }, ms, ...args);
      }
      await import(${JSON.stringify(pathToFileURL(tsx).href)}).then(({ register }) => register());
      await import(${JSON.stringify(lua)});
      await import(${JSON.stringify(thread)});`;
    const heartbeat = newHeartbeat();
    const pool = new CellPool(4, 10_000);
    const config: ThreadConfig & { counter: Int32Array } = {
      connections: [{ kind: 'url', url: redis.url }],
      redisTimeoutMs: 1000,
      heartbeat,
      cells: pool.memory,
      ring: newRing(1024),
      beatMs: 100,
      maxStallMs: 60_000,
      counter,
    };
    const worker = new Worker(boot, { eval: true, workerData: config });
    cleanups.push(() => worker.terminate());
    const ready = new Promise((resolve) => worker.once('message', resolve));
    // This thread is awake: it beats, as a leader's thread does.
    const beating = setInterval(() => beat(heartbeat), 100);
    cleanups.push(() => clearInterval(beating));
    await ready;

    // A 30 s lease last proven 20 s ago: overdue (its leader's own renewal is late: Redis slow, say),
    // still valid for about 6.7 s, its leader awake. The rule says wait; the thread should look again
    // every 250 ms (a tenth of the lease at most), not every millisecond.
    const LEASE_MS = 30_000;
    const { slot, generation, cell } = pool.take(performance.now() - 20_000)!;
    const names = keyNames(ns(), 'k');
    const message: ToThread = [1, slot, generation, names.key, names.lease, 'not-ours', LEASE_MS];
    const before = Atomics.load(counter, 0);
    worker.postMessage(message);
    await sleep(500);
    const timers = Atomics.load(counter, 0) - before;
    endCell(cell, STOPPED);
    expect(timers).toBeLessThan(20);
  });

  it('a node-redis Cluster whose TLS is in `defaults`: the standby’s connections to the masters it discovers get no TLS (its AUTH goes out in plaintext)', async () => {
    const cluster = createCluster({
      rootNodes: [{ url: 'rediss://127.0.0.1:7000' }],
      defaults: { username: 'once-app', password: 'secret', socket: { tls: true, rejectUnauthorized: true } },
    });
    const derived = renewerConnection(cluster as never);
    expect(derived).toHaveProperty('connection');
    const connection = (derived as { connection: { kind: string; redisOptions?: Record<string, unknown> } })
      .connection;
    expect(connection.kind).toBe('cluster');
    // ioredis connects to every master named by CLUSTER SLOTS with redisOptions alone.
    expect(connection.redisOptions).toMatchObject({ password: 'secret' });
    expect(connection.redisOptions?.tls).toBeDefined();
  });
});

describe('OpenTelemetry bridge', () => {
  it('disable() while a call is in flight: its span is never ended', async () => {
    const { telemetry, disable } = telemetryOn();
    const once = open({ redis: redis.url, namespace: ns() });
    const started = gate();
    const release = gate();
    const run = once.run('k', async () => {
      started.open();
      await release.promise;
      return 1;
    });
    await started.promise;
    disable();
    release.open();
    expect(await run).toBe(1);
    expect(telemetry.spans().filter((span) => span.name === 'redis-once.run')).toHaveLength(1);
  });

  it('disable() while a fn runs: leases.held stays at 1 for good', async () => {
    const { telemetry, disable } = telemetryOn();
    const once = open({ redis: redis.url, namespace: ns() });
    const started = gate();
    const release = gate();
    const run = once.run('k', async () => {
      started.open();
      await release.promise;
      return 1;
    });
    await started.promise;
    expect(await leasesHeld(telemetry)).toBe(1);
    disable();
    release.open();
    expect(await run).toBe(1);
    expect(await leasesHeld(telemetry)).toBe(0);
  });

  it('leases.held drifts: a leader whose complete throws (a foreign value at its state key) publishes no done, fail or lease-lost', async () => {
    const { telemetry } = telemetryOn();
    const namespace = ns();
    const once = open({ redis: redis.url, namespace });
    const error = await once
      .run('k', async () => {
        await admin.del(`${namespace}:{k}:state`);
        await admin.set(`${namespace}:{k}:state`, 'someone else’s');
        return 1;
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OnceForeignValueError);
    expect(await leasesHeld(telemetry)).toBe(0);
  });

  it('leases.lost counts one lost lease twice: the deadline passes while complete is on its way (lease-lost), then complete is refused (lease-lost again)', async () => {
    const { telemetry } = telemetryOn();
    const paused = await startRedis({ name: 'review5-paused' });
    cleanups.push(() => paused.stop());
    const LEASE_MS = 1000;
    const once = open({ redis: paused.url, namespace: ns(), leaseMs: LEASE_MS, maxStallMs: 0 });
    cleanups.push(() => paused.resume().catch(() => {}));
    const lost: unknown[] = [];
    const onLost = (message: unknown) => lost.push(message);
    diagnostics.subscribe('redis-once:lease-lost', onLost);
    cleanups.push(() => diagnostics.unsubscribe('redis-once:lease-lost', onLost));

    let ledAt = 0;
    const pausedNow = gate();
    const run = once
      .run('k', async () => {
        ledAt = performance.now();
        // Redis stops answering as fn returns: complete is sent, and waits.
        await paused.pause();
        pausedNow.open();
        return 1;
      })
      .catch((error: unknown) => error);
    // The lease's deadline passes while complete waits; then Redis comes back once the lease has
    // expired there too, and refuses the complete that waited: one loss, counted once.
    await pausedNow.promise;
    await sleep(Math.max(0, ledAt + LEASE_MS + 200 - performance.now()));
    await paused.resume();
    expect(await run).toMatchObject({ name: 'LeaseLostError' });
    expect(lost).toHaveLength(1);
    const counted = points(await telemetry.metrics(), 'redis_once.leases.lost').reduce(
      (sum, point) => sum + Number(point.value),
      0,
    );
    expect(counted).toBe(1);
  });
});
