/**
 * node:diagnostics_channel, by the names DESIGN.md gives: the TracingChannels `redis-once:run` and
 * `redis-once:wait`, and the point events `redis-once:<event>`, against a real redis-server.
 */
import { randomUUID } from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createOnce, type Once } from '../../src/index.js';
import { waitFor } from '../helpers/gate.js';
import { type RedisServer, startRedis } from '../helpers/redis-server.js';

let redis: RedisServer;
const cleanups: Array<() => unknown> = [];

beforeAll(async () => {
  redis = await startRedis({ name: 'diagnostics' });
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(async () => {
  await redis.stop();
});

function open(namespace: string, options: Partial<Parameters<typeof createOnce>[0]> = {}): Once {
  const once = createOnce({ redis: redis.url, namespace, ...options });
  cleanups.push(() => once.close());
  return once;
}

interface Seen {
  event: string;
  context: Record<string, unknown>;
}

/** Everything `name`'s TracingChannel publishes, with a snapshot of the context at each event. */
function trace(name: string): Seen[] {
  const seen: Seen[] = [];
  const channel = diagnostics.tracingChannel(name);
  const record = (event: string) => (context: unknown) =>
    seen.push({ event, context: { ...(context as Record<string, unknown>) } });
  const handlers = {
    start: record('start'),
    end: record('end'),
    asyncStart: record('asyncStart'),
    asyncEnd: record('asyncEnd'),
    error: record('error'),
  };
  channel.subscribe(handlers);
  cleanups.push(() => channel.unsubscribe(handlers));
  return seen;
}

/** Every message of the point events named. */
function points(...names: string[]): Array<{ event: string; message: Record<string, unknown> }> {
  const seen: Array<{ event: string; message: Record<string, unknown> }> = [];
  for (const name of names) {
    const listener = (message: unknown) =>
      seen.push({ event: name, message: message as Record<string, unknown> });
    diagnostics.subscribe(`redis-once:${name}`, listener);
    cleanups.push(() => diagnostics.unsubscribe(`redis-once:${name}`, listener));
  }
  return seen;
}

describe('the redis-once:run TracingChannel', () => {
  it('carries key and namespace from start, and the result by asyncEnd, for a leader, a follower and a cached call', async () => {
    const namespace = `dc-${randomUUID()}`;
    const seen = trace('redis-once:run');
    const [a, b] = [open(namespace), open(namespace)];
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let started!: () => void;
    const leaderStarted = new Promise<void>((resolve) => (started = resolve));
    const leading = a.run('k', async () => {
      started();
      await held;
      return 'v';
    });
    await leaderStarted;
    const following = b.runDetailed('k', () => 'never');
    // b waits (subscribed) for a's run: a follower, not a late reader of the done state.
    const admin = redis.client();
    await waitFor(async () => Number((await admin.pubsub('NUMSUB', `${namespace}:{k}:done`))[1]) === 1, {
      what: 'the follower to subscribe',
    });
    release();
    expect(await leading).toBe('v');
    expect(await following).toMatchObject({ role: 'follower', value: 'v' });
    expect(await a.wrap('k', () => 'never')()).toBe('v');

    const starts = seen.filter((s) => s.event === 'start');
    expect(starts).toHaveLength(3);
    for (const start of starts) expect(start.context).toEqual({ key: 'k', namespace });
    const ends = seen.filter((s) => s.event === 'asyncEnd').map((s) => s.context.result);
    expect(ends).toEqual(
      expect.arrayContaining([
        { role: 'leader', fencingToken: expect.any(Number), attempt: 1, waitedMs: expect.any(Number) },
        { role: 'follower', fencingToken: expect.any(Number), attempt: 1, waitedMs: expect.any(Number) },
        { role: 'cached', fencingToken: expect.any(Number), attempt: 1, waitedMs: expect.any(Number) },
      ]),
    );
    expect(seen.filter((s) => s.event === 'error')).toEqual([]);
  });

  it('publishes the error event when the call rejects (fn threw)', async () => {
    const seen = trace('redis-once:run');
    const once = open(`dc-${randomUUID()}`);
    await expect(
      once.run('bad', () => {
        throw new TypeError('no');
      }),
    ).rejects.toThrow('no');
    const error = seen.find((s) => s.event === 'error');
    expect(error?.context).toMatchObject({ key: 'bad', error: expect.any(TypeError) });
  });
});

describe('the redis-once:wait TracingChannel', () => {
  it('ends with role cached for a key already done', async () => {
    const namespace = `dc-${randomUUID()}`;
    await open(namespace).run('k', () => 'v');
    const seen = trace('redis-once:wait');
    const waiter = open(namespace);
    expect(await waiter.wait('k')).toBe('v');
    expect(seen.find((s) => s.event === 'start')?.context).toEqual({ key: 'k', namespace });
    expect(seen.find((s) => s.event === 'asyncEnd')?.context.result).toMatchObject({ role: 'cached' });
  });
});

describe('point events', () => {
  it('publishes lead, renew, done, fail, takeover, reset and lease-lost', async () => {
    const namespace = `dc-${randomUUID()}`;
    const seen = points('lead', 'renew', 'done', 'fail', 'takeover', 'reset', 'lease-lost');
    const once = open(namespace, { leaseMs: 300, nodeId: 'node-1' });
    // Led, renewed once (a third of 300 ms), done.
    await once.run('a', () => new Promise((resolve) => setTimeout(() => resolve('v'), 200)));
    // Failed, then taken over.
    await expect(once.run('b', () => Promise.reject(new Error('first fails')))).rejects.toThrow();
    await once.run('b', () => 'second');
    // A forced reset while fn runs: the lease is lost.
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const lost = once
      .run('c', (ctx) => {
        started();
        return new Promise((_, reject) =>
          ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)),
        );
      })
      .catch((e: unknown) => e);
    await running;
    await once.reset('c', { force: true });
    expect(await lost).toMatchObject({ name: 'LeaseLostError' });

    const of = (event: string, key: string) => seen.filter((s) => s.event === event && s.message.key === key);
    expect(of('lead', 'a')).toEqual([
      {
        event: 'lead',
        message: { key: 'a', namespace, nodeId: 'node-1', fencingToken: expect.any(Number), attempt: 1 },
      },
    ]);
    expect(of('renew', 'a').length).toBeGreaterThanOrEqual(1);
    expect(of('done', 'a')).toHaveLength(1);
    expect(of('fail', 'b')).toEqual([
      { event: 'fail', message: expect.objectContaining({ attempt: 1, outcome: 'failed', error: 'Error' }) },
    ]);
    expect(of('takeover', 'b')).toEqual([
      {
        event: 'takeover',
        message: expect.objectContaining({
          attempt: 2,
          previous: expect.objectContaining({ outcome: 'failed' }),
        }),
      },
    ]);
    expect(of('reset', 'c')).toEqual([
      { event: 'reset', message: { key: 'c', namespace, force: true, existed: true } },
    ]);
    expect(of('lease-lost', 'c')).toEqual([
      { event: 'lease-lost', message: expect.objectContaining({ key: 'c', reason: 'LeaseLostError' }) },
    ]);
  });
});

describe('with nobody listening', () => {
  const names = [
    ...['lead', 'takeover', 'renew', 'lease-lost', 'done', 'fail', 'reset'].map(
      (event) => `redis-once:${event}`,
    ),
    ...['run', 'wait'].flatMap((call) =>
      ['start', 'end', 'asyncStart', 'asyncEnd', 'error'].map(
        (event) => `tracing:redis-once:${call}:${event}`,
      ),
    ),
  ];

  /** Counts every publish on redis-once's channels (an own `publish` shadows the prototype's). */
  function countPublishes(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const name of names) {
      const channel = diagnostics.channel(name) as diagnostics.Channel & {
        publish: (message: unknown) => void;
      };
      const original = channel.publish;
      channel.publish = function (this: diagnostics.Channel, message: unknown) {
        counts.set(name, (counts.get(name) ?? 0) + 1);
        return original.call(this, message);
      };
      cleanups.push(() => Reflect.deleteProperty(channel, 'publish'));
    }
    return counts;
  }

  it('publishes nothing on any channel: leading, following, failing, waiting, resetting, losing a lease', async () => {
    for (const name of names) expect(diagnostics.channel(name).hasSubscribers, name).toBe(false);
    const counts = countPublishes();
    const namespace = `quiet-${randomUUID()}`;
    const [a, b] = [open(namespace, { maxAttempts: 2 }), open(namespace)];
    await a.run('k', async () => 'v');
    await expect(b.runDetailed('k', async () => 'never')).resolves.toMatchObject({ role: 'cached' });
    await expect(b.wait('k')).resolves.toBe('v');
    await expect(a.run('f', async () => Promise.reject(new Error('no')))).rejects.toThrow('no');
    await expect(b.run('f', async () => 'second')).resolves.toBe('second');
    let running!: () => void;
    const started = new Promise<void>((resolve) => (running = resolve));
    const lost = a
      .run('c', (ctx) => {
        running();
        return new Promise((_, reject) =>
          ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)),
        );
      })
      .catch((e: unknown) => e);
    await started;
    await b.reset('c', { force: true });
    expect(await lost).toMatchObject({ name: 'LeaseLostError' });
    expect(Object.fromEntries(counts)).toEqual({});

    // The counting itself works: one listener, and its channel alone is published on.
    const listener = () => {};
    diagnostics.subscribe('redis-once:lead', listener);
    cleanups.push(() => diagnostics.unsubscribe('redis-once:lead', listener));
    await a.run('heard', async () => 'v');
    expect(Object.fromEntries(counts)).toEqual({ 'redis-once:lead': 1 });
  });
});
