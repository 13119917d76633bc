/**
 * Review of Core v2: each test reproduces one finding against real redis-server processes, and fails
 * on the code as reviewed because of that finding.
 */
import { randomUUID } from 'node:crypto';
import { setImmediate as tick } from 'node:timers/promises';
import { inspect } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openDriver } from '../../src/drivers/index.js';
import {
  createOnce,
  type Once,
  OnceAbortError,
  OnceError,
  OnceFailedError,
  OnceTimeoutError,
} from '../../src/index.js';
import { keyNames } from '../../src/keys.js';
import { claim } from '../../src/scripts.js';
import { type Gate, gate, waitFor } from '../helpers/gate.js';
import { startProxy } from '../helpers/proxy.js';
import { type RedisServer, startRedis } from '../helpers/redis-server.js';

let redis: RedisServer;
let admin: Redis;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  redis = await startRedis({ name: 'review' });
  admin = redis.client();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(async () => {
  await redis.stop();
});

function ns(): string {
  return `rv-${randomUUID()}`;
}

function open(options: Parameters<typeof createOnce>[0]): Once {
  const once = createOnce({ leaseMs: 2000, ...options });
  cleanups.push(() => once.close());
  return once;
}

/** An ioredis client of ours (the caller's), closed after the test. */
function callerClient(url: string): Redis {
  const client = new Redis(url);
  client.on('error', () => {});
  cleanups.push(async () => client.disconnect());
  return client;
}

/**
 * Holds the reply of the next EVALSHA sent through `client` (a caller's client: the driver calls
 * `client.call`) once Redis has answered it, until `release` opens.
 */
function holdNextScriptReply(client: Redis): { replied: Gate<void>; release: Gate<void> } {
  const replied = gate();
  const release = gate();
  const original = client.call.bind(client) as (...args: unknown[]) => Promise<unknown>;
  let armed = true;
  (client as unknown as { call: (...args: unknown[]) => Promise<unknown> }).call = (...args) => {
    if (!armed || args[0] !== 'EVALSHA') return original(...args);
    armed = false;
    return original(...args).then(async (reply) => {
      replied.open();
      await release.promise;
      return reply;
    });
  };
  return { replied, release };
}

describe('memo and resets', () => {
  it('does not remember a value learned by a flight every caller left, after a reset of the key was announced', async () => {
    const namespace = ns();
    const elsewhere = open({ redis: redis.url, namespace });
    expect(await elsewhere.run('k', () => 'before the reset')).toBe('before the reset');

    const client = callerClient(redis.url);
    const once = open({ redis: client as never, namespace });
    await once.run('warm-up', () => 'scripts loaded, control channel listening');

    // Flight A reads the key (done), but its reply is held; its only caller leaves meanwhile.
    const held = holdNextScriptReply(client);
    const controller = new AbortController();
    const first = once.run('k', () => 'never', { signal: controller.signal });
    await held.replied.promise;
    controller.abort();
    await expect(first).rejects.toBeInstanceOf(OnceAbortError);
    // A newer flight of the key comes and goes (it finds the key done).
    expect(await once.wait('k')).toBe('before the reset');

    // The key is reset elsewhere; this process hears it and forgets the key.
    await elsewhere.reset('k');
    await waitFor(
      async () =>
        (await once.wait('k', { waitTimeoutMs: 50 }).catch((e: unknown) => e)) instanceof OnceTimeoutError,
      { what: 'the reset to reach this process' },
    );

    // Only now does flight A's (pre-reset) reply arrive.
    held.release.open();
    await tick();
    await tick();

    expect(await once.status('k')).toMatchObject({ state: 'idle' });
    let runs = 0;
    const value = await once.run('k', () => {
      runs++;
      return 'after the reset';
    });
    expect({ value, runs }).toEqual({ value: 'after the reset', runs: 1 });
  });
});

describe('quorum', () => {
  let masters: RedisServer[];
  beforeAll(async () => {
    masters = await Promise.all([1, 2, 3].map((i) => startRedis({ name: `review-q${i}` })));
  });
  afterAll(async () => {
    await Promise.all(masters.map((master) => master.stop()));
  });

  it('starts the count again after a reset that one master missed: attempt 1, no previous', async () => {
    const namespace = ns();
    // This node reaches master 1 through a proxy (slowed below); the admin reaches master 2 through one
    // that refuses while it resets.
    const toSecond = await startProxy(masters[1]!);
    const adminToThird = await startProxy(masters[2]!);
    cleanups.push(
      () => toSecond.close(),
      () => adminToThird.close(),
    );
    const once = open({
      quorum: [masters[0]!.url, toSecond.url, masters[2]!.url],
      namespace,
      maxAttempts: 3,
    });
    const resetter = open({
      quorum: [masters[0]!.url, masters[1]!.url, adminToThird.url],
      namespace,
    });
    await expect(
      once.run('k', () => {
        throw new Error('first attempt fails');
      }),
    ).rejects.toThrow('first attempt fails');
    // The failure counted once a majority recorded it; let every master record it (and release its
    // lease) before the reset, which a live lease anywhere in its majority would refuse.
    await waitFor(
      async () => {
        for (const master of masters) {
          if ((await master.client().hget(`${namespace}:{k}:state`, 'status')) !== 'failed') return false;
        }
        return true;
      },
      { what: 'every master to record the failure' },
    );

    // The reset reaches masters 0 and 1; master 2 misses it.
    adminToThird.set({ kind: 'refuse' });
    adminToThird.cut();
    expect(await resetter.reset('k')).toEqual({ existed: true });
    expect(await masters[2]!.client().hget(`${namespace}:{k}:state`, 'status')).toBe('failed');

    // Master 1 answers late, so the claim's majority is masters 0 and 2.
    toSecond.set({ kind: 'delay', ms: 300 });
    const seen = await once.run('k', (ctx) => ({ attempt: ctx.attempt, previous: ctx.previous ?? null }));
    expect(seen).toEqual({ attempt: 1, previous: null });
  });

  it('does not run fn again over a done state that read-repair would restore (one master lagging, one wiped)', async () => {
    const namespace = ns();
    const state = `${namespace}:{k}:state`;
    const clients = masters.map((master) => master.client());
    // Attempt 9 completed on masters 0 and 1 (a majority); master 2 had missed the completion. Then
    // master 1 restarted without persistence: it holds nothing, its counter included.
    await clients[0]!.hset(state, { status: 'done', token: '9', attempts: '1', value: '"kept"' });
    await clients[0]!.set(`${namespace}:{k}:fence`, '9');
    await clients[2]!.hset(state, { status: 'running', token: '9', attempts: '1' });
    await clients[2]!.set(`${namespace}:{k}:fence`, '9');
    const once = open({ quorum: masters.map((master) => master.url), namespace });
    // What the key reads as: done, once read-repair copied it (reconcile's rule 3).
    let runs = 0;
    const result = await once.runDetailed('k', () => {
      runs++;
      return 'ran again';
    });
    expect({ value: result.value, runs }).toEqual({ value: 'kept', runs: 0 });
  });
});

describe('per-caller maxAttempts in a shared flight', () => {
  it('lets a caller whose own maxAttempts allow it take over, beside a caller whose attempts are spent', async () => {
    const once = open({ redis: redis.url, namespace: ns(), maxAttempts: 3 });
    await expect(
      once.run('k', () => {
        throw new Error('attempt 1 fails');
      }),
    ).rejects.toThrow('attempt 1 fails');
    // One process, two concurrent callers: one allows a single attempt, the other five.
    const strict = once.run('k', () => 'strict ran', { maxAttempts: 1 }).catch((e: unknown) => e);
    const patient = once.run('k', () => 'patient ran', { maxAttempts: 5 }).catch((e: unknown) => e);
    expect(await strict).toBeInstanceOf(OnceFailedError);
    expect(await patient).toBe('patient ran');
  });

  it('keeps wait() waiting by its instance maxAttempts when a run of the flight allows fewer', async () => {
    const once = open({ redis: redis.url, namespace: ns(), maxAttempts: 3 });
    await expect(
      once.run('k', () => {
        throw new Error('attempt 1 fails');
      }),
    ).rejects.toThrow('attempt 1 fails');
    const waiting = once.wait('k', { waitTimeoutMs: 300 }).catch((e: unknown) => e);
    const strict = once.run('k', () => 'strict ran', { maxAttempts: 1 }).catch((e: unknown) => e);
    expect(await strict).toBeInstanceOf(OnceFailedError);
    // 1 attempt of the instance's 3 is spent: wait() goes on waiting (here until its own timeout).
    expect(await waiting).toBeInstanceOf(OnceTimeoutError);
  });
});

describe('error typing', () => {
  it('rejects with a typed OnceError, naming the key, when a done state holds a value that is not JSON', async () => {
    const namespace = ns();
    await admin.hset(`${namespace}:{k}:state`, {
      status: 'done',
      token: '1',
      attempts: '1',
      value: 'not json',
    });
    const once = open({ redis: redis.url, namespace });
    const fromRun = await once.run('k', () => 'x').catch((e: unknown) => e);
    const fromStatus = await once.status('k').catch((e: unknown) => e);
    expect(fromRun).toBeInstanceOf(OnceError);
    expect(fromStatus).toBeInstanceOf(OnceError);
    expect((fromRun as OnceError).key).toBe('k');
  });

  it('keeps the password of a URL out of the errors it rejects with, causes included', async () => {
    const guarded = await startRedis({ name: 'review-auth', args: ['--requirepass', 'right-one'] });
    cleanups.push(() => guarded.stop());
    const once = open({
      redis: `redis://default:s3cr3t-wrong@${guarded.host}:${guarded.port}`,
      namespace: ns(),
      redisTimeoutMs: 500,
    });
    const error = await once.status('k').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OnceError);
    expect(inspect(error, { depth: Number.POSITIVE_INFINITY })).not.toContain('s3cr3t-wrong');
  });
});

describe('a subscriber connection that went silent', () => {
  it('hears of a reset (or forgets what it remembers) within moments when its subscriber connection is half-open', async () => {
    const namespace = ns();
    const elsewhere = open({ redis: redis.url, namespace });
    // The caller's client talks to Redis directly; the subscriber connection redis-once duplicates from
    // it goes through a proxy, so that only that connection can go silent (an idle connection dropped
    // by a NAT or a load balancer, with no RST).
    const silent = await startProxy(redis);
    cleanups.push(() => silent.close());
    const client = callerClient(redis.url);
    client.duplicate = ((overrides?: object) => new Redis(silent.url, overrides ?? {})) as never;
    const once = open({ redis: client as never, namespace, redisTimeoutMs: 500 });
    expect(await once.run('k', () => 'before the reset')).toBe('before the reset');

    silent.set({ kind: 'blackhole' });
    await elsewhere.reset('k');
    let runs = 0;
    await waitFor(
      async () => {
        await once.run('k', () => {
          runs++;
          return 'after the reset';
        });
        return runs > 0;
      },
      { timeoutMs: 10_000, intervalMs: 50, what: 'this process to run the reset key again' },
    );
  }, 20_000);
});

describe('a crash loop (each leader dies mid-fn, the next takes over)', () => {
  it('keeps the state hash small however many crashed attempts it replaced', async () => {
    const names = keyNames(ns(), 'k');
    const driver = openDriver(redis.url, 2000);
    cleanups.push(() => driver.close());
    for (let i = 1; i <= 16; i++) {
      const reply = await claim(driver, names, {
        leaseValue: `leader-${i}`,
        leaseMs: 30_000,
        owner: `node-${i}`,
        maxAttempts: 100,
        token: undefined,
        sharded: false,
      });
      expect(reply).toMatchObject({ kind: 'claimed', attempt: i });
      await admin.del(names.lease); // leader i dies; its lease runs out
    }
    // 16 crashes. The state holds one running attempt and what it replaced.
    expect(await admin.hstrlen(names.state, 'prev')).toBeLessThan(64 * 1024);
  });
});

describe('durations', () => {
  it('takes a doneTtlMs of 30 days (no timer waits on it; Redis and the memo take any positive integer)', async () => {
    const thirtyDays = 30 * 24 * 3600 * 1000;
    const once = open({ redis: redis.url, namespace: ns(), doneTtlMs: thirtyDays });
    expect(await once.run('k', () => 'kept for a month')).toBe('kept for a month');
  });
});

describe('replicaAck', () => {
  it('still runs fn when replicas do not acknowledge (a missing acknowledgement is logged, not an error)', async () => {
    // No replica at all: every WAIT waits its whole timeoutMs, which here outlasts the lease's validity.
    const once = open({
      redis: redis.url,
      namespace: ns(),
      leaseMs: 400,
      replicaAck: { replicas: 1, timeoutMs: 500 },
      waitTimeoutMs: 4000,
    });
    let runs = 0;
    const value = await once
      .run('k', () => {
        runs++;
        return 'ran';
      })
      .catch((e: unknown) => e);
    expect({ value, runs }).toEqual({ value: 'ran', runs: 1 });
  });
});
