/**
 * Fourth review (wait(), the memo, the subscription layer, input validation): each
 * test reproduces one finding against real redis-server processes, and fails on the code as reviewed
 * because of it.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { createClient } from 'redis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openDriver } from '../../src/drivers/index.js';
import {
  createOnce,
  type Once,
  OnceClosedError,
  OnceFailedError,
  OnceInputError,
  OnceTimeoutError,
} from '../../src/index.js';
import { controlChannel, keyNames } from '../../src/keys.js';
import { claim, scripts } from '../../src/scripts.js';
import { gate, waitFor } from '../helpers/gate.js';
import { startProxy } from '../helpers/proxy.js';
import { type RedisServer, startRedis } from '../helpers/redis-server.js';

let redis: RedisServer;
let admin: Redis;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  redis = await startRedis({ name: 'review4' });
  admin = redis.client();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(async () => {
  await redis.stop();
});

function ns(): string {
  return `rv4-${randomUUID()}`;
}

function open(options: Parameters<typeof createOnce>[0]): Once {
  const once = createOnce({ leaseMs: 2000, ...options });
  cleanups.push(() => once.close());
  return once;
}

/** Subscribers of a (plain) channel, as the server counts them. */
async function subscribers(channel: string): Promise<number> {
  const reply = (await admin.call('PUBSUB', 'NUMSUB', channel)) as [string, number];
  return Number(reply[1]);
}

/**
 * Starts watching (through MONITOR) for read scripts on `stateKey`; `reads(count)` resolves once the
 * server has run `count` of them: the point where a wait() flight has subscribed and read again, and
 * now only waits.
 */
async function watchReads(stateKey: string) {
  const monitor = await redis.client().monitor();
  cleanups.push(async () => monitor.disconnect());
  let seen = 0;
  const waiters: Array<{ count: number; resolve: () => void }> = [];
  monitor.on('monitor', (_time: string, args: string[]) => {
    if (args[0]?.toLowerCase() !== 'evalsha' || args[1] !== scripts.read.sha || args[3] !== stateKey) return;
    seen++;
    for (const waiter of waiters.filter((w) => w.count <= seen)) waiter.resolve();
  });
  return {
    reads: (count: number) =>
      new Promise<void>((resolve) => {
        if (seen >= count) resolve();
        else waiters.push({ count, resolve });
      }),
  };
}

describe('wait() on a key that is idle when it looks', () => {
  it('rejects with OnceFailedError once a leader that claimed the key afterwards crashed on the last attempt', async () => {
    // wait() never claims, so a wait-only flight reads the key: idle, nobody leads, no lease deadline
    // to wake at. It then waits for a message on the key's channel with no timer at all
    // (Coordinator.wakeAt → Infinity). The claim script publishes nothing, and a crashed leader
    // publishes nothing either: when the leader that claimed the key after that read dies on the last
    // allowed attempt, nothing ever tells the waiter. Contract: wait() "rejects with OnceFailedError
    // when the key's attempts (the instance's maxAttempts) are spent", and followers "wake on a timer
    // at the lease deadline they were told" — this one was never told. It times out instead
    // (the CLI's `wait` exits 75, not 70, after its full --timeout, e.g. 10 minutes).
    const namespace = ns();
    const names = keyNames(namespace, 'k');
    const waiter = open({ redis: redis.url, namespace, maxAttempts: 1 });
    // The read script loaded and the control channel listening: each read of 'k' is one EVALSHA.
    await waiter.run('warm-up', () => 'ready');
    await waiter.status('warm-up');

    const monitor = await watchReads(names.state);
    const waiting = waiter.wait('k', { waitTimeoutMs: 4000 }).catch((e: unknown) => e);
    // The flight read 'k' (idle), subscribed, read it again (idle): it now waits for a message.
    await monitor.reads(2);

    // Another process claims the key — its only allowed attempt — and dies in fn: its 300 ms lease
    // runs out with nobody renewing it. (This is the claim a leader sends; it crashes right after.)
    const driver = openDriver(redis.url, 2000);
    cleanups.push(() => driver.close());
    const crashed = await claim(driver, names, {
      leaseValue: 'a-leader-that-dies',
      leaseMs: 300,
      owner: 'crashing-node',
      maxAttempts: 1,
      token: undefined,
      sharded: false,
    });
    expect(crashed).toMatchObject({ kind: 'claimed', attempt: 1 });

    const outcome = await waiting;
    // The key's attempts are spent by the waiter's own maxAttempts (1): status says failed.
    expect((await waiter.status('k')).state).toBe('failed');
    expect(outcome).not.toBeInstanceOf(OnceTimeoutError);
    expect(outcome).toBeInstanceOf(OnceFailedError);
  }, 10_000);
});

describe('the memo of a closed instance', () => {
  it('does not answer from memory after close(), when resets can no longer reach it', async () => {
    // close() closes the control-channel subscription without telling the memo (the subscriber is
    // closed with `closed = true`, so no `down`/`deaf` fires, and memo.lose() is never called), yet
    // run(), runDetailed() and wait() consult the memo before assertOpen(). A closed instance hears
    // no reset, so its memo outlives the state it mirrors: after a reset elsewhere and a new run, it
    // still hands out the old value. Contract: "The local memo never outlives the state it mirrors".
    // Calls on a closed instance reject with OnceClosedError everywhere else (a key not in memory).
    const namespace = ns();
    const closing = createOnce({ redis: redis.url, namespace });
    const elsewhere = open({ redis: redis.url, namespace });
    expect(await closing.run('k', () => 'v1')).toBe('v1');
    await closing.close();

    expect(await elsewhere.reset('k')).toEqual({ existed: true });
    expect(await elsewhere.run('k', () => 'v2')).toBe('v2');

    const fromRun = await closing.run('k', () => 'never runs').catch((e: unknown) => e);
    const fromWait = await closing.wait('k').catch((e: unknown) => e);
    // A key it never saw rejects as a closed instance should:
    await expect(closing.run('other', () => 'x')).rejects.toBeInstanceOf(OnceClosedError);
    expect(fromRun).not.toBe('v1');
    expect(fromWait).not.toBe('v1');
    expect(fromRun).toBeInstanceOf(OnceClosedError);
    expect(fromWait).toBeInstanceOf(OnceClosedError);
  });
});

describe('node-redis: a watch that ends while the subscriber connection is down', () => {
  it('leaves no subscription behind once node-redis reconnects', async () => {
    // Subscriptions.unwatch sends UNSUBSCRIBE only while the connection is up (subscriber.ts); while it
    // is down it just forgets the channel. ioredis (autoResubscribe: false) then never subscribes it
    // again, but node-redis keeps its own listener for the channel and SUBSCRIBEs it again by itself
    // on reconnect (its `resubscribe`, before 'ready'). Nobody watches that channel any more, nobody
    // will unsubscribe it: each key whose wait ended during an outage stays subscribed on the server
    // and in the client's listener map for the life of the connection — a leak that grows with keys.
    const namespace = ns();
    const names = keyNames(namespace, 'k');
    const proxy = await startProxy(redis);
    cleanups.push(() => proxy.close());
    const client = createClient({ url: proxy.url, socket: { reconnectStrategy: () => 50 } });
    client.on('error', () => {});
    await client.connect();
    cleanups.push(async () => client.destroy());
    // The subscriber connection redis-once duplicates, so the test can hear it drop and come back.
    const subscriberDropped = gate();
    const subscriberReady = gate();
    const duplicate = client.duplicate.bind(client);
    client.duplicate = ((overrides?: never) => {
      const subscriber = duplicate(overrides);
      subscriber.on('error', () => subscriberDropped.open());
      subscriber.on('ready', () => subscriberDropped.opened && subscriberReady.open());
      return subscriber;
    }) as never;
    const once = open({ redis: client as never, namespace, redisTimeoutMs: 1000 });
    await once.run('warm-up', () => 'control channel listening');

    const controller = new AbortController();
    const waiting = once.wait('k', { signal: controller.signal }).catch((e: unknown) => e);
    await waitFor(async () => (await subscribers(names.done)) === 1, { what: "the wait's subscription" });

    // The connections drop, and cannot come back for now.
    proxy.set({ kind: 'refuse' });
    proxy.cut();
    await subscriberDropped.promise;
    // The only caller leaves: the flight ends and closes its watch while the connection is down.
    controller.abort();
    await waiting;
    const channels = (once as unknown as { subscriptions: Array<{ channels: Map<string, unknown> }> })
      .subscriptions[0]!.channels;
    await waitFor(() => !channels.has(names.done), { what: 'the watch of "k" to be closed' });

    proxy.set({ kind: 'pass' });
    await subscriberReady.promise;
    await waitFor(async () => (await subscribers(controlChannel(namespace))) === 1, {
      what: 'the control channel to be subscribed again',
    });
    // Our UNSUBSCRIBE goes out on 'ready', on the subscriber's own connection: it may reach the server
    // just after the query above. Before the fix the channel stayed subscribed for good.
    await waitFor(async () => (await subscribers(names.done)) === 0, {
      what: 'the channel nobody watches to be unsubscribed',
      timeoutMs: 2000,
    });
  }, 15_000);
});

describe('reset options', () => {
  it('refuses an unknown option with OnceInputError and leaves the key as it is', async () => {
    // run() and wait() refuse unknown options (rejectUnknown in options.ts); reset() only checks that
    // `force` is a boolean (once.ts, reset). A misspelt `{ forse: true }` is taken as a plain reset and
    // forgets the done key. Contract: "Bad input … gets a clear, typed error and changes nothing in
    // Redis".
    const namespace = ns();
    const once = open({ redis: redis.url, namespace });
    expect(await once.run('k', () => 'v')).toBe('v');
    const outcome = await once.reset('k', { forse: true } as never).catch((e: unknown) => e);
    expect((await once.status('k')).state).toBe('done');
    expect(outcome).toBeInstanceOf(OnceInputError);
  });
});
