/**
 * Redis refusing, against real servers configured to refuse: memory full (noeviction), an ACL user
 * without a command we use, a script hogging the server (BUSY), a replica answering READONLY. Each
 * ends in a typed error that names the cause, within the bound, with nothing half-written. And a value
 * far larger than the pub/sub output buffer limit still reaches every follower. Each test records what
 * it measured for docs/RELIABILITY.md.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { createOnce, type Once, RedisUnavailableError } from '../../src/index.js';
import { keyNames } from '../../src/keys.js';
import { waitFor } from '../helpers/gate.js';
import { type RedisServer, startRedis } from '../helpers/redis-server.js';
import { recordFault } from '../helpers/reliability.js';

const REDIS_TIMEOUT_MS = 1000;
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function server(name: string, args: string[] = []): Promise<RedisServer> {
  const started = await startRedis({ name, args });
  cleanups.push(() => started.stop());
  return started;
}

function open(redis: string, namespace: string): Once {
  const once = createOnce({ redis, namespace, redisTimeoutMs: REDIS_TIMEOUT_MS });
  cleanups.push(() => once.close());
  return once;
}

/** The keys of `namespace` on `server`: what a refused call left behind. */
async function keysOf(target: RedisServer, namespace: string): Promise<string[]> {
  return target.client().keys(`${namespace}:*`);
}

/** One run that Redis refuses: it rejects with a typed error naming `cause`, in time, writing nothing. */
async function refusedRun(
  id: string,
  url: string,
  target: RedisServer,
  cause: RegExp,
  /** Ends the refusal before Redis is looked at (a BUSY script killed). */
  recover?: () => Promise<unknown>,
): Promise<void> {
  const namespace = `refused-${randomUUID()}`;
  const once = open(url, namespace);
  let ran = false;
  const started = performance.now();
  const error = await once
    .run('k', () => {
      ran = true;
      return 'v';
    })
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  const settleMs = performance.now() - started;
  expect(error).toBeInstanceOf(RedisUnavailableError);
  expect((error as Error).message).toMatch(cause);
  expect(ran).toBe(false);
  expect(settleMs).toBeLessThan(REDIS_TIMEOUT_MS + 500);
  await recover?.();
  expect(await keysOf(target, namespace)).toEqual([]);
  recordFault({
    id,
    runs: 1,
    callers: 1,
    executions: 0,
    done: 0,
    staleRefused: 0,
    settled: 1,
    worstSettleMs: settleMs,
  });
}

describe('Redis refusing', () => {
  it('memory full with noeviction (OOM): a typed error naming it, nothing written', async () => {
    const full = await server('refuse-oom', ['--maxmemory', '3mb', '--maxmemory-policy', 'noeviction']);
    const admin = full.client();
    for (let i = 0; ; i++) {
      const filled = await admin.set(`filler:${i}`, 'x'.repeat(200_000)).then(
        () => false,
        () => true,
      );
      if (filled) break;
    }
    await refusedRun('redis-oom', full.url, full, /OOM command not allowed/);
  });

  it('an ACL user without a command we use (EVALSHA): a typed error naming the command', async () => {
    const guarded = await server('refuse-acl');
    await guarded
      .client()
      .call('ACL', 'SETUSER', 'noeval', 'on', '>noeval-pass', '~*', '&*', '+@all', '-evalsha');
    await refusedRun(
      'redis-acl',
      `redis://noeval:noeval-pass@127.0.0.1:${guarded.port}`,
      guarded,
      /NOPERM .*'evalsha' command/,
    );
  });

  it('a script hogging the server (BUSY): a typed error naming it, within the bound', async () => {
    const busy = await server('refuse-busy', ['--busy-reply-threshold', '100']);
    const hog = new Redis(busy.port, { host: busy.host });
    cleanups.push(async () => hog.disconnect());
    // A script that runs for 3 s: past 100 ms every other client is answered BUSY.
    const hogging = hog
      .eval(
        "local s = tonumber(redis.call('TIME')[1]); while tonumber(redis.call('TIME')[1]) < s + 3 do end return 1",
        0,
      )
      .catch((e: Error) => e.message); // ends with SCRIPT KILL, below

    cleanups.push(() => hogging);
    const probe = busy.client();
    await waitFor(async () => (await probe.ping().catch((e: Error) => e.message)).startsWith('BUSY'), {
      what: 'the server to answer BUSY',
    });
    // Killed, the script still has to stop: its own call ends once it has.
    await refusedRun('redis-busy', busy.url, busy, /BUSY Redis is busy running a script/, async () => {
      await probe.call('SCRIPT', 'KILL');
      await hogging;
    });
  });

  it('a replica answering READONLY (pointed at it after a failover): a typed error naming it', async () => {
    const master = await server('refuse-master');
    const replica = await server('refuse-replica', ['--replicaof', master.host, String(master.port)]);
    await refusedRun(
      'redis-readonly',
      replica.url,
      replica,
      /READONLY You can't write against a read only replica/,
    );
  });
});

describe('a value larger than the pub/sub output buffer limit', () => {
  it('reaches every follower: the completion message leaves it out, and they read it', async () => {
    const limited = await server('refuse-big', ['--client-output-buffer-limit', 'pubsub 1mb 512kb 1']);
    const namespace = `big-${randomUUID()}`;
    const value = { blob: 'v'.repeat(3 * 1024 * 1024) };
    const leader = open(limited.url, namespace);
    const followers = [1, 2, 3].map(() => open(limited.url, namespace));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const leading = leader.run('big', async () => {
      await gate;
      return value;
    });
    // The followers wait (subscribed) while the leader runs; then it completes with 3 MB.
    const waiting = followers.map((f) => f.wait<typeof value>('big', { waitTimeoutMs: 10_000 }));
    const admin = limited.client();
    const channel = keyNames(namespace, 'big').done;
    // A subscriber of our own: had the 3 MB been published, Redis would have disconnected it.
    const spy = limited.client();
    let spyDisconnected = 0;
    const spyMessages: string[] = [];
    spy.on('close', () => spyDisconnected++);
    spy.on('message', (_, message: string) => spyMessages.push(message));
    await spy.subscribe(channel);
    await waitFor(async () => Number((await admin.pubsub('NUMSUB', channel))[1]) === 4, {
      what: 'the followers to subscribe',
    });
    const completedAt = performance.now();
    release();
    const results = await Promise.all([leading, ...waiting]);
    const settleMs = performance.now() - completedAt;
    for (const result of results) expect(result.blob.length).toBe(value.blob.length);
    // The completion message left the value out; nobody was disconnected for it.
    await waitFor(() => spyMessages.length > 0, { what: 'the completion message' });
    expect(spyMessages.some((m) => m.includes('valueOmitted') && m.length < 64 * 1024)).toBe(true);
    expect(spyDisconnected).toBe(0);
    spy.disconnect();
    recordFault({
      id: 'big-value',
      runs: 1,
      callers: 4,
      executions: 1,
      done: 1,
      staleRefused: 0,
      settled: results.length,
      worstSettleMs: settleMs,
    });
  });
});
