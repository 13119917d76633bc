/**
 * The edge bugs an independent review reproduced against real servers (issue "Core v2", §3), each as
 * the sentence it broke. Every test here failed on the core before Core v2.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createOnce, type Once, OnceAbortError, type OnceContext, OnceFailedError } from '../../src/index.js';
import { CLIENT_KINDS, type Connected, connect } from '../helpers/clients.js';
import { gate, waitFor } from '../helpers/gate.js';
import { type FaultProxy, startProxy } from '../helpers/proxy.js';
import { canInjectFaults, type RedisServer, startRedis } from '../helpers/redis-server.js';
import { killAllWorkers, Worker } from '../helpers/worker.js';

let redis: RedisServer;
let admin: Redis;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  redis = await startRedis({ name: 'edges', args: ['--databases', '32'] });
  admin = redis.client();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await killAllWorkers();
});
afterAll(async () => {
  await redis.stop();
});

function ns(): string {
  return `e-${randomUUID()}`;
}

function open(options: Parameters<typeof createOnce>[0]): Once {
  const once = createOnce({ leaseMs: 2000, ...options });
  cleanups.push(() => once.close());
  return once;
}

async function client(kind: (typeof CLIENT_KINDS)[number], url: string): Promise<Connected> {
  const connected = await connect(kind, url);
  cleanups.push(() => connected.close());
  return connected;
}

async function proxy(db?: number): Promise<FaultProxy> {
  const p = await startProxy({ host: redis.host, port: redis.port }, db);
  cleanups.push(() => p.close());
  return p;
}

describe.each(CLIENT_KINDS)('1. any database number the server has, with %s', (kind) => {
  it('runs on redis://host/20, with every key in database 20', async () => {
    const namespace = ns();
    const { spec } = await client(kind, `${redis.url}/20`);
    const once = open({ redis: spec, namespace, waitTimeoutMs: 3000 });
    expect(await once.run('migrate', () => 'in db 20')).toBe('in db 20');
    const db20 = redis.client({ db: 20 });
    cleanups.push(async () => db20.disconnect());
    expect((await db20.keys(`${namespace}:*`)).sort()).toEqual([
      `${namespace}:{migrate}:fence`,
      `${namespace}:{migrate}:state`,
    ]);
    expect(await admin.keys(`${namespace}:*`)).toEqual([]);
  });
});

describe('2. fn never starts for a flight whose every caller has left', () => {
  it('does not start fn after its only caller aborted while the claim was in flight, and spends no attempt', async () => {
    const namespace = ns();
    const slow = await proxy();
    const once = open({ redis: slow.url, namespace, leaseMs: 5000 });
    await once.run('warm-up', () => 'connected, scripts loaded');
    slow.set({ kind: 'delay', ms: 150 }); // each way: a round trip takes 300 ms
    // Callers that leave at different moments: before, during and after their one round trip.
    const trials = [50, 120, 200, 280, 340, 650, 750, 850, 950].map(async (abortAt) => {
      const key = `left-${abortAt}`;
      let fnStartedAt: number | undefined;
      const t0 = performance.now();
      const controller = new AbortController();
      setTimeout(() => controller.abort(new Error('caller left')), abortAt);
      const outcome = await once
        .run(
          key,
          () => {
            fnStartedAt = performance.now() - t0;
            return 'ran';
          },
          { signal: controller.signal },
        )
        .then(
          (value) => ({ value }),
          (error: unknown) => ({ error }),
        );
      return { key, abortAt, fnStartedAt, outcome };
    });
    const results = await Promise.all(trials);
    await sleep(1500); // every request in flight (300 ms a round trip) has landed
    slow.set({ kind: 'pass' });
    for (const { key, abortAt, fnStartedAt, outcome } of results) {
      if ('error' in outcome) {
        expect(outcome.error, key).toBeInstanceOf(OnceAbortError);
        // A caller that left before fn started: fn never starts, and no attempt is spent.
        expect(fnStartedAt, `${key}: fn started after its only caller left at ${abortAt} ms`).toBeUndefined();
        expect(await once.status(key)).toEqual({ state: 'idle', attempts: 0 });
        expect(await admin.exists(`${namespace}:{${key}}:lease`)).toBe(0);
      } else {
        // fn started before the abort: the caller is the one running fn, and its call stands.
        expect(fnStartedAt!).toBeLessThan(abortAt);
        expect(outcome.value).toBe('ran');
      }
    }
    expect(results.filter((r) => 'error' in r.outcome).length).toBeGreaterThan(0);
  });

  it('does not start fn when close() comes before it could start, and spends no attempt', async () => {
    // Instances closed at different moments: before, during and after the round trips that lead to fn.
    const trials = [100, 250, 650, 750, 850].map(async (closeAt) => {
      const namespace = ns();
      const slow = await proxy();
      const once = createOnce({ redis: slow.url, namespace, leaseMs: 5000 });
      await once.run('warm-up', () => 'ready');
      slow.set({ kind: 'delay', ms: 150 });
      let fnStartedAt: number | undefined;
      const t0 = performance.now();
      const run = once
        .run('closing', () => {
          fnStartedAt = performance.now() - t0;
          return 'ran';
        })
        .then(
          (value) => ({ value }),
          (error: unknown) => ({ error }),
        );
      await sleep(closeAt);
      await once.close();
      const outcome = await run;
      await sleep(1500);
      slow.set({ kind: 'pass' });
      return { namespace, closeAt, fnStartedAt, outcome };
    });
    for (const { namespace, closeAt, fnStartedAt, outcome } of await Promise.all(trials)) {
      if ('error' in outcome) {
        expect(outcome.error).toMatchObject({ name: 'OnceClosedError' });
        expect(fnStartedAt, `fn started after close() at ${closeAt} ms`).toBeUndefined();
        expect(await admin.exists(`${namespace}:{closing}:lease`)).toBe(0);
        expect(await admin.exists(`${namespace}:{closing}:state`)).toBe(0);
      } else {
        expect(fnStartedAt!).toBeLessThan(closeAt);
      }
    }
  });
});

describe.skipIf(!canInjectFaults)('3. quorum: a reset that one master missed', () => {
  it('is never undone nor counted as a crashed attempt: every key runs again as attempt 1', async () => {
    const masters = await Promise.all([1, 2, 3].map((i) => startRedis({ name: `edges-q${i}` })));
    cleanups.push(() => Promise.all(masters.map((m) => m.stop())));
    const links = await Promise.all(masters.map((m) => startProxy({ host: m.host, port: m.port })));
    cleanups.push(() => Promise.all(links.map((l) => l.close())));
    const namespace = ns();
    const once = open({ quorum: links.map((l) => l.url), namespace, maxAttempts: 3, redisTimeoutMs: 1000 });
    const keys = Array.from({ length: 6 }, (_, i) => `k${i}`);
    await Promise.all(keys.map((key) => once.run(key, () => 'first')));
    const readers = masters.map((m) => m.client());
    cleanups.push(async () => {
      for (const reader of readers) reader.disconnect();
    });
    const doneEverywhere = async () => {
      for (const reader of readers)
        for (const key of keys)
          if ((await reader.hget(`${namespace}:{${key}}:state`, 'status')) !== 'done') return false;
      return true;
    };
    // A write counts once a majority applied it; let the third master catch up before it misses the reset.
    await waitFor(doneEverywhere, { timeoutMs: 15_000, what: 'every master to hold every done state' });

    // The third master misses the resets: its link drops them, then the connection is cut.
    links[2]!.set({ kind: 'blackhole' });
    for (const key of keys) await once.reset(key);
    links[2]!.cut();
    links[2]!.set({ kind: 'pass' });
    for (const key of keys) {
      expect((await masters[2]!.client().hget(`${namespace}:{${key}}:state`, 'status')) ?? 'gone').toBe(
        'done',
      );
    }

    const seen: Array<{ attempt: number; previous: OnceContext['previous'] }> = [];
    const results = await Promise.allSettled(
      keys.map((key) =>
        once.run(key, (ctx) => {
          seen.push({ attempt: ctx.attempt, previous: ctx.previous });
          return 'second';
        }),
      ),
    );
    expect(
      results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason),
    ).toEqual([]);
    expect(seen).toHaveLength(6);
    for (const s of seen) expect(s).toEqual({ attempt: 1, previous: undefined });
    expect(results.every((r) => r.status === 'fulfilled' && r.value === 'second')).toBe(true);
  });
});

describe('5. re-entry is judged by fn’s own await chain', () => {
  it('lets work that fn scheduled (a timer) reset and run the key after fn finished', async () => {
    const once = open({ redis: redis.url, namespace: ns() });
    const later = gate<Promise<string>>();
    await once.run('warmer', () => {
      setTimeout(() => {
        later.open(
          (async () => {
            await once.reset('warmer');
            return once.run('warmer', () => 'rewarmed');
          })(),
        );
      }, 10);
      return 'warmed';
    });
    expect(await await later.promise).toBe('rewarmed');
  });
});

describe.skipIf(!canInjectFaults)('6. with doneTtlMs, memory never outlives the state', () => {
  it('is timed from before the completion, whenever the follower’s busy event loop processes the message', async () => {
    const namespace = ns();
    const follower = open({ redis: redis.url, namespace, doneTtlMs: 300 });
    const leader = await Worker.start({
      url: redis.url,
      namespace,
      key: 'ttl',
      nodeId: 'leader',
      callers: 1,
      fnMs: 150,
      doneTtlMs: 300,
      leaseMs: 2000,
    });
    leader.go();
    await leader.next((e) => e.type === 'fn-start');
    const waiting = follower.runDetailed('ttl', () => 'never');
    await waitFor(async () => Number((await admin.pubsub('NUMSUB', `${namespace}:{ttl}:done`))[1]) > 0, {
      what: 'the follower to subscribe',
    });
    // The follower's event loop is busy past the leader's completion and past the done TTL.
    const blockedUntil = performance.now() + 700;
    while (performance.now() < blockedUntil) {
      /* a CPU-bound stretch, as an application may have */
    }
    expect(await waiting).toMatchObject({ role: 'follower', value: { by: 'leader' } });
    expect(await admin.exists(`${namespace}:{ttl}:state`)).toBe(0);
    // Redis has forgotten the key: so has this process.
    expect(await follower.runDetailed('ttl', () => 'again')).toMatchObject({
      role: 'leader',
      value: 'again',
    });
  });
});

describe('7. a forced reset stops the running leader within moments', () => {
  it('aborts ctx.signal in well under a second, not at the next renewal', async () => {
    const namespace = ns();
    const a = open({ redis: redis.url, namespace, leaseMs: 6000 });
    const b = open({ redis: redis.url, namespace });
    const started = gate();
    let abortedAt: number | undefined;
    const run = a.run('long', async (ctx) => {
      ctx.signal.addEventListener('abort', () => {
        abortedAt = performance.now();
      });
      started.open();
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
      return 'stopped';
    });
    await started.promise;
    await sleep(100);
    const resetAt = performance.now();
    await b.reset('long', { force: true });
    await expect(run).rejects.toThrow(/reset/);
    expect(abortedAt! - resetAt).toBeLessThan(500);
  });
});

describe('8. suspected, confirmed and fixed', () => {
  it('forgets what it remembers as soon as the control connection drops (a reset may go unheard)', async () => {
    const namespace = ns();
    const link = await proxy();
    const a = open({ redis: link.url, namespace });
    const b = open({ redis: redis.url, namespace });
    expect(await a.run('k', () => 'first')).toBe('first');
    // a's subscriber connection drops and cannot come back; its command connection stays up.
    link.set({ kind: 'refuse' });
    await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    await b.reset('k');
    // The reset was announced while a could not hear it: a must not answer from memory.
    await expect.poll(() => a.run('k', () => 'second'), { timeout: 3000 }).toBe('second');
  });

  it('waits for Redis within each call’s own bound, not within the first caller’s', async () => {
    const link = await proxy();
    link.set({ kind: 'refuse' });
    const once = open({ redis: link.url, namespace: ns(), redisTimeoutMs: 1000 });
    const settledAt: Record<string, number> = {};
    const t0 = performance.now();
    const call = (name: string) =>
      once.status('k').then(
        () => {
          settledAt[name] = performance.now() - t0;
        },
        () => {
          settledAt[name] = performance.now() - t0;
        },
      );
    const first = call('first');
    await sleep(500);
    const second = call('second');
    await first;
    // The first caller's bound has passed; the second caller, which came 500 ms later, waits on.
    expect(settledAt.first).toBeGreaterThanOrEqual(990);
    await sleep(200);
    expect(settledAt.second).toBeUndefined();
    await second;
    expect(settledAt.second).toBeGreaterThanOrEqual(1490);
  });

  it('records the value when complete was answered late: a retried complete finds its own done state', async () => {
    const namespace = ns();
    const paused = await startRedis({ name: 'edges-pause' });
    cleanups.push(() => paused.stop());
    const once = open({ redis: paused.url, namespace, leaseMs: 10_000, redisTimeoutMs: 400 });
    const run = once.run('late', async () => {
      // Redis stops answering just as fn returns, for longer than redisTimeoutMs.
      await paused.pause();
      setTimeout(() => void paused.resume(), 600);
      return 'recorded';
    });
    expect(await run).toBe('recorded');
    expect(await once.status('late')).toMatchObject({ state: 'done', value: 'recorded' });
  });

  it.skipIf(!canInjectFaults)(
    'gives back a claim that only a quorum minority took: no attempt is spent there',
    async () => {
      const masters = await Promise.all([1, 2, 3].map((i) => startRedis({ name: `edges-minority${i}` })));
      cleanups.push(() => Promise.all(masters.map((m) => m.stop())));
      const links = await Promise.all(masters.map((m) => startProxy({ host: m.host, port: m.port })));
      cleanups.push(() => Promise.all(links.map((l) => l.close())));
      const namespace = ns();
      const once = open({ quorum: links.map((l) => l.url), namespace, redisTimeoutMs: 400 });
      expect(await once.status('k')).toEqual({ state: 'idle', attempts: 0 }); // connected to all three
      // Two masters stop answering: a claim can reach the first one only.
      links[1]!.set({ kind: 'blackhole' });
      links[2]!.set({ kind: 'blackhole' });
      let ran = false;
      await expect(
        once.run('k', () => {
          ran = true;
        }),
      ).rejects.toMatchObject({ name: 'RedisUnavailableError' });
      expect(ran).toBe(false);
      const first = masters[0]!.client();
      cleanups.push(async () => first.disconnect());
      await waitFor(async () => (await first.exists(`${namespace}:{k}:lease`)) === 0, {
        what: 'the minority claim to be given back',
      });
      expect(await first.hgetall(`${namespace}:{k}:state`)).toEqual({});
      for (const link of links) {
        link.cut();
        link.set({ kind: 'pass' });
      }
      expect(await once.runDetailed('k', (ctx) => ctx.attempt)).toMatchObject({ value: 1, attempt: 1 });
    },
  );

  it('bounds the error stored for a failed attempt', async () => {
    const namespace = ns();
    const once = open({ redis: redis.url, namespace, maxAttempts: 1 });
    await expect(
      once.run('loud', () => {
        throw new Error('x'.repeat(1_000_000));
      }),
    ).rejects.toThrow();
    const stored = await admin.hget(`${namespace}:{loud}:state`, 'error');
    expect(Buffer.byteLength(stored!)).toBeLessThan(5000);
    const error = await once.run('loud', () => 1).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OnceFailedError);
    expect((error as OnceFailedError).lastErrorMessage).toMatch(/truncated/);
  });
});

describe('9. close() while fn ignores its signal', () => {
  it('keeps the lease until fn settles: no other node starts beside it', async () => {
    const namespace = ns();
    const a = createOnce({ redis: redis.url, namespace, leaseMs: 5000 });
    const b = open({ redis: redis.url, namespace });
    const started = gate();
    let aEndedAt: number | undefined;
    let bStartedAt: number | undefined;
    const leaderRun = a.run('stubborn', async () => {
      started.open();
      await sleep(800); // ignores ctx.signal
      aEndedAt = performance.now();
      return 'late';
    });
    await started.promise;
    const closing = a.close();
    const takeover = b.runDetailed('stubborn', () => {
      bStartedAt = performance.now();
      return 'taken over';
    });
    await expect(leaderRun).rejects.toThrow(/closed/);
    await closing;
    expect(await takeover).toMatchObject({ value: 'taken over', attempt: 2 });
    expect(bStartedAt!).toBeGreaterThanOrEqual(aEndedAt!);
    // …and soon after fn settled, not at the lease's end.
    expect(bStartedAt! - aEndedAt!).toBeLessThan(1000);
  });
});

describe('big values', () => {
  it('reach every follower, past the pub/sub output buffer limit (a large value is read, not pushed)', async () => {
    const tight = await startRedis({
      name: 'edges-big',
      args: ['--client-output-buffer-limit', 'pubsub 1mb 512kb 1'],
    });
    cleanups.push(() => tight.stop());
    const namespace = ns();
    const leader = open({ redis: tight.url, namespace });
    const followers = [1, 2, 3].map(() => open({ redis: tight.url, namespace }));
    const big = { blob: 'x'.repeat(3 * 1024 * 1024) };
    const started = gate();
    const finish = gate();
    const leading = leader.run('big', async () => {
      started.open();
      await finish.promise;
      return big;
    });
    await started.promise;
    const waiting = followers.map((f) => f.runDetailed('big', () => ({ blob: 'never' })));
    const admin = tight.client();
    cleanups.push(async () => admin.disconnect());
    await waitFor(async () => Number((await admin.pubsub('NUMSUB', `${namespace}:{big}:done`))[1]) === 3, {
      what: 'the followers to subscribe',
    });
    finish.open();
    expect((await leading).blob.length).toBe(big.blob.length);
    for (const result of await Promise.all(waiting)) {
      expect(result.role).toBe('follower');
      expect(result.value.blob.length).toBe(big.blob.length);
    }
    // No subscriber was cut off for its output buffer.
    expect(Number((await admin.pubsub('NUMSUB', `${namespace}:control`))[1])).toBe(4);
  });
});
