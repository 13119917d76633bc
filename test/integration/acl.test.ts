/**
 * The least-privilege ACL rule the README gives, applied to a real redis-server: a user limited to the
 * namespace's keys and channels and to the commands redis-once uses runs a race, a crash taken over,
 * waits, status and resets. One command fewer ends in a typed error naming it, in bounded time.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createOnce, type Once, RedisUnavailableError } from '../../src/index.js';
import { canInjectFaults, type RedisServer, startRedis } from '../helpers/redis-server.js';
import { killAllWorkers, Worker } from '../helpers/worker.js';

/** The rule, as the README states it, for namespace `ns`. */
export function leastPrivilege(ns: string): string[] {
  return [
    'resetkeys',
    `~${ns}:*`,
    'resetchannels',
    `&${ns}:*`,
    '-@all',
    // Calls: the scripts by SHA (EVAL once, SCRIPT LOAD on a fresh server), subscriptions, health.
    '+evalsha',
    '+eval',
    '+script|load',
    '+subscribe',
    '+unsubscribe',
    '+ssubscribe',
    '+sunsubscribe',
    '+ping',
    // What the scripts run (Redis checks each call inside a script against the user too).
    '+get',
    '+set',
    '+del',
    '+type',
    '+pttl',
    '+pexpire',
    '+hget',
    '+hmget',
    '+hgetall',
    '+hset',
    '+time',
    '+publish',
    '+spublish',
  ];
}

let redis: RedisServer;
const onces: Once[] = [];

beforeAll(async () => {
  redis = await startRedis({ name: 'acl' });
});
afterEach(async () => {
  await killAllWorkers();
  await Promise.all(onces.splice(0).map((once) => once.close()));
});
afterAll(async () => {
  await redis.stop();
});

async function user(name: string, rules: string[]): Promise<string> {
  await redis.client().call('ACL', 'SETUSER', name, 'reset', 'on', `>${name}-pass`, ...rules);
  return `redis://${name}:${name}-pass@127.0.0.1:${redis.port}`;
}

function open(url: string, namespace: string, extra: Partial<Parameters<typeof createOnce>[0]> = {}): Once {
  const once = createOnce({ redis: url, namespace, redisTimeoutMs: 1000, ...extra });
  onces.push(once);
  return once;
}

describe.skipIf(!canInjectFaults)('the least-privilege ACL rule', () => {
  it('is enough for a race, waits, status and resets (plain and forced)', async () => {
    const namespace = `acl-${randomUUID()}`;
    const url = await user(`once-${namespace.slice(4, 12)}`, leastPrivilege(namespace));
    const nodes = [1, 2, 3].map(() => open(url, namespace));
    let runs = 0;
    const values = await Promise.all(
      nodes.flatMap((node) =>
        [1, 2, 3].map(() =>
          node.run('migrate', async () => {
            runs++;
            await new Promise((resolve) => setTimeout(resolve, 50));
            return 'done once';
          }),
        ),
      ),
    );
    expect(runs).toBe(1);
    expect(new Set(values)).toEqual(new Set(['done once']));
    expect(await nodes[1]!.wait('migrate')).toBe('done once');
    expect(await nodes[2]!.status('migrate')).toMatchObject({ state: 'done' });
    expect(await nodes[0]!.reset('migrate')).toEqual({ existed: true });
    // A forced reset while a leader runs: it hears at once.
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const lost = nodes[0]!
      .run('warm', (ctx) => {
        started();
        return new Promise((_, reject) =>
          ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)),
        );
      })
      .catch((e: unknown) => e);
    await running;
    expect(await nodes[1]!.reset('warm', { force: true })).toEqual({ existed: true });
    expect(await lost).toMatchObject({ name: 'LeaseLostError' });
  });

  it('is enough for a crashed leader to be taken over', async () => {
    const namespace = `acl-${randomUUID()}`;
    const url = await user(`crash-${namespace.slice(4, 12)}`, leastPrivilege(namespace));
    const base = { url, namespace, key: 'k', callers: 2, leaseMs: 600, redisTimeoutMs: 1000 };
    const doomed = await Worker.start({ ...base, nodeId: 'doomed', fnMs: 30_000 });
    doomed.go();
    await doomed.next((e) => e.type === 'fn-start');
    const survivor = await Worker.start({ ...base, nodeId: 'survivor', fnMs: 50 });
    survivor.go();
    await doomed.kill();
    await survivor.finished();
    expect(survivor.fnStarts()).toEqual([
      expect.objectContaining({ attempt: 2, previous: expect.objectContaining({ outcome: 'crashed' }) }),
    ]);
    expect(survivor.results().map((r) => r.value.by)).toEqual(['survivor', 'survivor']);
  });

  it('one command fewer (PUBLISH) ends in a typed error naming it, in bounded time, and no value', async () => {
    const namespace = `acl-${randomUUID()}`;
    const url = await user(
      `nopub-${namespace.slice(4, 12)}`,
      leastPrivilege(namespace).filter((rule) => rule !== '+publish'),
    );
    const once = open(url, namespace);
    const started = performance.now();
    const error = await once.run('k', () => 'v').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RedisUnavailableError);
    // Redis names only the script and its line; we name the command that line calls.
    expect((error as Error).message).toMatch(/that line calls PUBLISH: the ACL user needs \+publish/);
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('keys and channels of another namespace stay out of reach', async () => {
    const namespace = `acl-${randomUUID()}`;
    const url = await user(`other-${namespace.slice(4, 12)}`, leastPrivilege(namespace));
    const once = open(url, `${namespace}-other`);
    const error = await once.run('k', () => 'v').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RedisUnavailableError);
    expect((error as Error).message).toMatch(/NOPERM/);
  });
});
