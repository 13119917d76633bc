import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createOnce,
  LeaseLostError,
  type Once,
  OnceAbortError,
  OnceBusyError,
  OnceClosedError,
  type OnceContext,
  OnceFailedError,
  OnceForeignValueError,
  OnceInputError,
  OnceReentrantError,
  OnceSerializationError,
  OnceTimeoutError,
} from '../../src/index.js';
import { CLIENT_KINDS, type ClientKind, type Connected, connect } from '../helpers/clients.js';
import { gate } from '../helpers/gate.js';
import { commandStats, diffStats, type RedisServer, startRedis } from '../helpers/redis-server.js';

let redis: RedisServer;
let admin: Redis;
const opened: Array<{ once: Once; client: Connected }> = [];

beforeAll(async () => {
  redis = await startRedis({ name: 'run' });
  admin = redis.client();
});
afterEach(async () => {
  const all = opened.splice(0);
  await Promise.all(all.map(({ once }) => once.close()));
  await Promise.all(all.map(({ client }) => client.close()));
});
afterAll(async () => {
  await redis.stop();
});

describe.each(CLIENT_KINDS)('with %s', (kind: ClientKind) => {
  /** A Once with its own client (of this suite's kind), as another process would have. */
  async function node(
    namespace: string,
    options: Partial<Parameters<typeof createOnce>[0]> = {},
  ): Promise<Once> {
    const client = await connect(kind, redis.url);
    const once = createOnce({ redis: client.spec, namespace, leaseMs: 2000, ...options });
    opened.push({ once, client });
    return once;
  }

  function ns(): string {
    return `t-${randomUUID()}`;
  }

  async function keysIn(namespace: string): Promise<Record<string, string>> {
    const keys = await admin.keys(`${namespace}:*`);
    const out: Record<string, string> = {};
    for (const key of keys.sort()) out[key] = await admin.type(key);
    return out;
  }

  describe('run', () => {
    it('shares one run among concurrent callers of one process and answers later calls from memory', async () => {
      const once = await node(ns());
      const release = gate();
      let runs = 0;
      const fn = async () => {
        runs++;
        await release.promise;
        return { applied: 12 };
      };
      const calls = Array.from({ length: 50 }, () => once.runDetailed('migrate', fn));
      release.open();
      const results = await Promise.all(calls);
      expect(runs).toBe(1);
      expect(results.map((r) => r.value)).toEqual(Array(50).fill({ applied: 12 }));
      expect(results.filter((r) => r.role === 'leader')).toHaveLength(1);
      expect(results.filter((r) => r.role === 'follower')).toHaveLength(49);
      expect(results[0]!.attempt).toBe(1);
      expect(Number.isSafeInteger(results[0]!.fencingToken)).toBe(true);

      expect(await once.runDetailed('migrate', fn)).toMatchObject({ role: 'cached', value: { applied: 12 } });
      expect(await once.wrap('migrate', fn)()).toEqual({ applied: 12 });
      expect(runs).toBe(1);
    });

    it('issues no Redis command at all for calls after done', async () => {
      const once = await node(ns());
      await once.run('warm', () => 'warm');
      const before = await commandStats(admin);
      for (let i = 0; i < 1000; i++) await once.run('warm', () => 'never');
      await Promise.all(Array.from({ length: 1000 }, () => once.runDetailed('warm', () => 'never')));
      const diff = diffStats(before, await commandStats(admin));
      diff.delete('info'); // our own INFO commandstats
      expect([...diff.entries()]).toEqual([]);
    });

    it('costs a leader 2 round trips (claim, complete) and a follower process 4 (claim, subscribe, claim, unsubscribe)', async () => {
      const namespace = ns();
      const a = await node(namespace);
      const b = await node(namespace);
      // Connections made, scripts loaded, resets listened for: what is left is the key's own traffic.
      await a.run('warm-a', () => 1);
      await b.run('warm-b', () => 1);
      const before = await commandStats(admin);
      const started = gate();
      const finish = gate();
      const leading = a.runDetailed('k', async () => {
        started.open();
        await finish.promise;
        return 'v';
      });
      await started.promise;
      const following = b.runDetailed('k', () => 'never');
      await expect
        .poll(async () => Number((await admin.pubsub('NUMSUB', `${namespace}:{k}:done`))[1]))
        .toBe(1);
      finish.open();
      expect(await leading).toMatchObject({ role: 'leader', value: 'v' });
      expect(await following).toMatchObject({ role: 'follower', value: 'v' });
      await expect
        .poll(async () => Number((await admin.pubsub('NUMSUB', `${namespace}:{k}:done`))[1]))
        .toBe(0);
      const diff = diffStats(before, await commandStats(admin));
      diff.delete('info');
      diff.delete('pubsub'); // our own PUBSUB NUMSUB
      // Scripts by SHA: the leader's claim and complete, the follower's claim before and after it subscribed.
      expect(diff.get('evalsha')).toBe(4);
      expect(diff.get('eval') ?? 0).toBe(0);
      expect(diff.get('subscribe')).toBe(1);
      expect(diff.get('unsubscribe')).toBe(1);
    });

    it('hands fn its context: key, rising fencing tokens, attempt, node id and a live signal', async () => {
      const namespace = ns();
      const once = await node(namespace, { nodeId: 'node-a' });
      const seen: OnceContext[] = [];
      await once.run('ctx', (ctx) => {
        seen.push(ctx);
        expect(ctx.signal.aborted).toBe(false);
      });
      await once.reset('ctx');
      await once.run('ctx', (ctx) => {
        seen.push(ctx);
      });
      expect(seen.map((c) => [c.key, c.attempt, c.nodeId, c.previous])).toEqual([
        ['ctx', 1, 'node-a', undefined],
        ['ctx', 1, 'node-a', undefined],
      ]);
      expect(seen[1]!.fencingToken).toBeGreaterThan(seen[0]!.fencingToken);
    });
  });

  describe('failure', () => {
    it('rejects the leader with its own error and lets a waiting node take over', async () => {
      const namespace = ns();
      const a = await node(namespace);
      const b = await node(namespace);
      const started = gate();
      const fail = gate();
      const leaderRun = a.run('flaky', async () => {
        started.open();
        await fail.promise;
        throw new TypeError('boom');
      });
      await started.promise;
      const followerRun = b.runDetailed('flaky', (ctx) => ({ attempt: ctx.attempt, previous: ctx.previous }));
      fail.open();

      await expect(leaderRun).rejects.toThrow(TypeError);
      const taken = await followerRun;
      expect(taken.role).toBe('leader');
      expect(taken.value).toMatchObject({ attempt: 2, previous: { outcome: 'failed' } });
      expect(await a.status('flaky')).toMatchObject({ state: 'done', attempts: 2 });
    });

    it('fails every caller fast with OnceFailedError once maxAttempts are spent, until reset', async () => {
      const namespace = ns();
      const a = await node(namespace, { maxAttempts: 1 });
      const b = await node(namespace, { maxAttempts: 1 });
      const started = gate();
      const fail = gate();
      const leaderRun = a.run('doomed', async () => {
        started.open();
        await fail.promise;
        throw new Error('disk full');
      });
      await started.promise;
      // Observed from the start: it may reject before the leader's own rejection is awaited.
      const followerRun = b.run('doomed', () => 'never').catch((e: unknown) => e);
      fail.open();

      await expect(leaderRun).rejects.toThrow('disk full');
      const error = await followerRun;
      expect(error).toBeInstanceOf(OnceFailedError);
      expect(error).toMatchObject({ lastErrorName: 'Error', lastErrorMessage: 'disk full', attempts: 1 });
      const later = await (await node(namespace, { maxAttempts: 1 }))
        .run('doomed', () => 'never')
        .catch((e: unknown) => e);
      expect(later).toBeInstanceOf(OnceFailedError);
      expect(await a.status('doomed')).toMatchObject({
        state: 'failed',
        error: { name: 'Error', message: 'disk full' },
      });

      await a.reset('doomed');
      expect(await b.run('doomed', () => 'fixed')).toBe('fixed');
    });

    it('never remembers a failure: the next call in the same process runs again', async () => {
      const once = await node(ns());
      await expect(
        once.run('retry', () => {
          throw new Error('first');
        }),
      ).rejects.toThrow('first');
      expect(await once.runDetailed('retry', () => 'second')).toMatchObject({ value: 'second', attempt: 2 });
    });

    it('gives other callers of the failing process a takeover rather than the leader’s error', async () => {
      const once = await node(ns());
      const release = gate();
      const leaderRun = once.run('shared', async () => {
        await release.promise;
        throw new Error('only mine');
      });
      const joined = once.runDetailed('shared', () => 'from the joiner');
      release.open();
      await expect(leaderRun).rejects.toThrow('only mine');
      expect(await joined).toMatchObject({ value: 'from the joiner', role: 'leader', attempt: 2 });
    });

    it('fails the attempt with OnceSerializationError for a value JSON cannot carry; it never becomes done', async () => {
      const namespace = ns();
      const once = await node(namespace);
      const error = await once.run('bigint', () => ({ n: 10n })).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OnceSerializationError);
      expect((error as Error).message).toContain('value.n');
      expect(await once.status('bigint')).toMatchObject({
        state: 'failed',
        error: { name: 'OnceSerializationError' },
      });
      const circular: Record<string, unknown> = {};
      circular.self = circular;
      await expect(once.run('bigint', () => circular)).rejects.toBeInstanceOf(OnceSerializationError);
      expect((await once.status('bigint')).attempts).toBe(2);
    });
  });

  describe('bounds', () => {
    it('ends only this caller’s wait at waitTimeoutMs; the run goes on and others get the value', async () => {
      const namespace = ns();
      const a = await node(namespace);
      const b = await node(namespace);
      const started = gate();
      const finish = gate();
      const leaderRun = a.run('slow', async () => {
        started.open();
        await finish.promise;
        return 'slow value';
      });
      await started.promise;
      const patient = b.run('slow', () => 'never');
      const t0 = performance.now();
      const error = await b.run('slow', () => 'never', { waitTimeoutMs: 150 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OnceTimeoutError);
      expect(performance.now() - t0).toBeLessThan(1000);
      finish.open();
      expect(await leaderRun).toBe('slow value');
      expect(await patient).toBe('slow value');
    });

    it('ends only this caller’s wait when its signal aborts', async () => {
      const namespace = ns();
      const a = await node(namespace);
      const b = await node(namespace);
      const started = gate();
      const finish = gate();
      const leaderRun = a.run('abortable', async () => {
        started.open();
        await finish.promise;
        return 'done';
      });
      await started.promise;
      const controller = new AbortController();
      const waiting = b.run('abortable', () => 'never', { signal: controller.signal });
      controller.abort(new Error('user left'));
      const error = await waiting.catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OnceAbortError);
      expect(error).toMatchObject({ name: 'AbortError', cause: new Error('user left') });
      await expect(b.run('abortable', () => 'never', { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(
        OnceAbortError,
      );
      finish.open();
      expect(await leaderRun).toBe('done');
    });

    it('does not cut off the caller whose own fn is running at waitTimeoutMs', async () => {
      const once = await node(ns());
      const started = gate();
      const finish = gate();
      const run = once.run(
        'long',
        async () => {
          started.open();
          await finish.promise;
          return 'finished';
        },
        { waitTimeoutMs: 50 },
      );
      await started.promise;
      await new Promise((resolve) => setTimeout(resolve, 120)); // past the wait bound, on purpose
      finish.open();
      expect(await run).toBe('finished');
    });
  });

  describe('wait', () => {
    it('never runs anything: resolves once the key is done elsewhere, or at once when it was done before', async () => {
      const namespace = ns();
      const a = await node(namespace);
      const b = await node(namespace);
      // Idle: it waits (on pub/sub) until someone runs the key.
      const waiting = b.wait<{ v: number }>('k');
      const started = gate();
      const finish = gate();
      const run = a.run('k', async () => {
        started.open();
        await finish.promise;
        return { v: 1 };
      });
      await started.promise;
      finish.open();
      expect(await run).toEqual({ v: 1 });
      expect(await waiting).toEqual({ v: 1 });
      // Done before: answered at once (from memory here), and from Redis in a fresh instance.
      expect(await b.wait('k')).toEqual({ v: 1 });
      expect(await (await node(namespace)).wait('k')).toEqual({ v: 1 });
    });

    it('rejects with OnceFailedError once the attempts are spent, by its instance’s maxAttempts', async () => {
      const namespace = ns();
      const a = await node(namespace, { maxAttempts: 1 });
      await expect(
        a.run('bad', () => {
          throw new Error('nope');
        }),
      ).rejects.toThrow('nope');
      const error = await (await node(namespace, { maxAttempts: 1 })).wait('bad').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OnceFailedError);
      expect(error).toMatchObject({ lastErrorMessage: 'nope', attempts: 1 });
      // With attempts left, it waits for a takeover rather than failing.
      const patient = await node(namespace, { maxAttempts: 2 });
      const outcome = await patient.wait('bad', { waitTimeoutMs: 200 }).catch((e: unknown) => e);
      expect(outcome).toBeInstanceOf(OnceTimeoutError);
    });

    it('is bounded by its own timeout and signal, and joins a run of the same key in this process', async () => {
      const namespace = ns();
      const once = await node(namespace);
      await expect(once.wait('idle', { waitTimeoutMs: 100 })).rejects.toBeInstanceOf(OnceTimeoutError);
      const controller = new AbortController();
      const aborted = once.wait('idle', { signal: controller.signal });
      controller.abort();
      await expect(aborted).rejects.toBeInstanceOf(OnceAbortError);
      // A wait first, then a run of the same key here: the run takes the key, the wait gets its value.
      const waiting = once.wait('joined');
      expect(await once.runDetailed('joined', () => 'ran')).toMatchObject({ role: 'leader', value: 'ran' });
      expect(await waiting).toBe('ran');
      await expect(once.wait('', {})).rejects.toBeInstanceOf(OnceInputError);
      await expect(once.wait('k', { waitTimeoutMs: 0 })).rejects.toThrow(/waitTimeoutMs/);
      await expect(once.wait('k', { leaseMs: 5 } as never)).rejects.toThrow(/unknown option "leaseMs"/);
    });

    it('refuses wait(key) from inside the key’s own fn instead of waiting for itself', async () => {
      const once = await node(ns());
      const error = await once.run('self', () => once.wait('self')).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OnceReentrantError);
    });
  });

  describe('bad input', () => {
    it('refuses bad keys, fns and durations with typed errors and leaves Redis untouched', async () => {
      const namespace = ns();
      const once = await node(namespace);
      const fn = () => 1;
      await expect(once.run('', fn)).rejects.toBeInstanceOf(OnceInputError);
      await expect(once.run('x'.repeat(1025), fn)).rejects.toBeInstanceOf(OnceInputError);
      await expect(once.run('é'.repeat(513), fn)).rejects.toThrow(/1026 bytes/);
      await expect(once.run('k', 'not a function' as never)).rejects.toBeInstanceOf(TypeError);
      await expect(once.run('k', fn, { leaseMs: -1 })).rejects.toThrow(/leaseMs/);
      await expect(once.run('k', fn, { waitTimeoutMs: Number.NaN })).rejects.toThrow(/waitTimeoutMs/);
      await expect(once.run('k', fn, { doneTtlMs: 1.5 })).rejects.toThrow(/doneTtlMs/);
      await expect(once.run('k', fn, { maxAttempts: 0 })).rejects.toThrow(/maxAttempts/);
      await expect(once.reset('')).rejects.toBeInstanceOf(OnceInputError);
      await expect(once.status(42 as never)).rejects.toBeInstanceOf(OnceInputError);
      expect(() => createOnce({ redis: redis.url, leaseMs: 0 })).toThrow(OnceInputError);
      expect(() => createOnce({ redis: redis.url, waitTimeoutMs: -5 })).toThrow(/waitTimeoutMs/);
      expect(() => createOnce({ redis: redis.url, leaseMS: 5 } as never)).toThrow(/unknown option "leaseMS"/);
      expect(await keysIn(namespace)).toEqual({});
    });

    it('refuses a foreign value at one of our keys, naming it, and overwrites nothing', async () => {
      const namespace = ns();
      const once = await node(namespace);
      await admin.set(`${namespace}:{taken}:state`, 'someone else’s');
      await admin.rpush(`${namespace}:{listed}:lease`, 'a list');
      await admin.hset(`${namespace}:{hashed}:state`, 'field', 'no status');
      for (const key of ['taken', 'listed', 'hashed']) {
        const error = await once.run(key, () => 'mine').catch((e: unknown) => e);
        expect(error).toBeInstanceOf(OnceForeignValueError);
        expect((error as OnceForeignValueError).redisKey).toMatch(new RegExp(`^${namespace}:\\{${key}\\}:`));
        await expect(once.reset(key)).rejects.toBeInstanceOf(OnceForeignValueError);
      }
      expect(await admin.get(`${namespace}:{taken}:state`)).toBe('someone else’s');
      expect(await admin.lrange(`${namespace}:{listed}:lease`, 0, -1)).toEqual(['a list']);
      expect(await admin.hgetall(`${namespace}:{hashed}:state`)).toEqual({ field: 'no status' });
    });
  });

  describe('reset, status and close', () => {
    it('reports idle, running, done; and reset makes every process run again', async () => {
      const namespace = ns();
      const a = await node(namespace, { nodeId: 'a' });
      const b = await node(namespace, { nodeId: 'b' });
      expect(await a.status('k')).toEqual({ state: 'idle', attempts: 0 });
      const started = gate();
      const finish = gate();
      const run = a.run('k', async () => {
        started.open();
        await finish.promise;
        return { v: 1 };
      });
      await started.promise;
      expect(await b.status('k')).toMatchObject({ state: 'running', owner: 'a', attempts: 1 });
      finish.open();
      await run;
      const done = await b.status('k');
      expect(done).toMatchObject({ state: 'done', owner: 'a', attempts: 1, value: { v: 1 } });
      expect(done.finishedAt).toBeGreaterThanOrEqual(done.startedAt!);
      expect(await a.runDetailed('k', () => ({ v: 2 }))).toMatchObject({ role: 'cached', value: { v: 1 } });

      expect(await b.reset('k')).toEqual({ existed: true });
      // a's memory of the key is dropped by the reset message: its next call runs fn again.
      await expect
        .poll(async () => (await a.runDetailed('k', () => ({ v: 2 }))).value, { timeout: 2000 })
        .toEqual({ v: 2 });
    });

    it('refuses to reset a running key unless forced; a forced reset takes the lease from its leader', async () => {
      const namespace = ns();
      const a = await node(namespace, { nodeId: 'a', leaseMs: 600 });
      const b = await node(namespace);
      const started = gate();
      let signal: AbortSignal | undefined;
      const run = a.run('busy', async (ctx) => {
        signal = ctx.signal;
        started.open();
        await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
        return 'late';
      });
      await started.promise;
      const refused = await b.reset('busy').catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(OnceBusyError);
      expect((refused as Error).message).toContain('on a');
      await b.reset('busy', { force: true });
      await expect(run).rejects.toBeInstanceOf(LeaseLostError);
      expect(signal?.aborted).toBe(true);
      expect(signal?.reason).toBeInstanceOf(LeaseLostError);
    });

    it('refuses run(key) from inside its own fn instead of waiting for itself', async () => {
      const once = await node(ns());
      const error = await once.run('outer', () => once.run('outer', () => 'inner')).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OnceReentrantError);
      expect(await once.run('outer2', () => once.run('inner', () => 'nested is fine'))).toBe(
        'nested is fine',
      );
      // Through another key's fn too: a → b → a would wait for itself.
      const cycle = await once
        .run('cycle-a', async () => {
          await Promise.resolve();
          return once.run('cycle-b', async () => {
            await Promise.resolve();
            return once.run('cycle-a', () => 'never');
          });
        })
        .catch((e: unknown) => e);
      expect(cycle).toBeInstanceOf(OnceReentrantError);
    });

    it('forgets a done key after doneTtlMs, in Redis and in memory', async () => {
      const namespace = ns();
      const once = await node(namespace, { doneTtlMs: 150 });
      let runs = 0;
      const fn = () => ++runs;
      expect(await once.run('ttl', fn)).toBe(1);
      expect(await admin.pttl(`${namespace}:{ttl}:state`)).toBeGreaterThan(0);
      expect(await once.run('ttl', fn)).toBe(1);
      await expect.poll(() => admin.exists(`${namespace}:{ttl}:state`), { timeout: 2000 }).toBe(0);
      expect(await once.run('ttl', fn)).toBe(2);
    });

    it('on close, rejects waiting callers and gives up its running attempt so another node takes over', async () => {
      const namespace = ns();
      const a = await node(namespace, { leaseMs: 30_000 });
      const b = await node(namespace);
      const started = gate();
      let signal: AbortSignal | undefined;
      const leaderRun = a.run('closing', async (ctx) => {
        signal = ctx.signal;
        started.open();
        await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
        return 'abandoned';
      });
      await started.promise;
      const waiter = a.run('other', () => new Promise(() => {}));
      const t0 = performance.now();
      const takeover = b.runDetailed('closing', () => 'taken over');
      const outcomes = Promise.allSettled([leaderRun, waiter]);
      await a.close();
      const [leaderOutcome, waiterOutcome] = await outcomes;
      expect(leaderOutcome).toMatchObject({ status: 'rejected', reason: expect.any(OnceClosedError) });
      expect(waiterOutcome).toMatchObject({ status: 'rejected', reason: expect.any(OnceClosedError) });
      expect(signal?.aborted).toBe(true);
      // Well before the 30 s lease: the closed leader recorded its attempt and released the lease.
      expect(await takeover).toMatchObject({ value: 'taken over', attempt: 2 });
      expect(performance.now() - t0).toBeLessThan(5000);
      await expect(a.run('after', () => 1)).rejects.toBeInstanceOf(OnceClosedError);
    });
  });
});
