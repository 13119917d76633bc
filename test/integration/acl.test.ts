/**
 * ACL rules applied to a real redis-server. The least-privilege rule the README gives (a user limited
 * to the namespace's keys and channels and to the commands redis-once uses), and the rule managed
 * services commonly hand out (everything but @dangerous and @admin, on the namespace's keys and
 * channels): as either user, a race, a crash taken over, waits, status and resets work. One command
 * fewer ends in a typed error naming it, in bounded time.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createOnce, type Once, type OnceLogger, RedisUnavailableError } from '../../src/index.js';
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

/**
 * The rule managed services commonly hand out (ElastiCache, Memorystore, Azure and the like): every
 * command but @dangerous (INFO, KEYS, CONFIG, CLIENT LIST…) and @admin, on the namespace's keys and
 * channels only.
 */
export function managedServiceRule(ns: string): string[] {
  return ['resetkeys', `~${ns}:*`, 'resetchannels', `&${ns}:*`, '+@all', '-@dangerous', '-@admin'];
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

interface Line {
  level: keyof OnceLogger;
  fields: Record<string, unknown>;
  message: string;
}

/** A logger that keeps its lines; `lines(n)` resolves once it has that many. */
function recorder() {
  const lines: Line[] = [];
  const waiting: Array<{ count: number; resolve: () => void }> = [];
  const log =
    (level: keyof OnceLogger) =>
    (fields: object, message: string): void => {
      lines.push({ level, fields: fields as Record<string, unknown>, message });
      for (const w of waiting.filter((w) => lines.length >= w.count)) w.resolve();
    };
  const logger: OnceLogger = {
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
  };
  const count = (n: number) =>
    new Promise<void>((resolve) => (lines.length >= n ? resolve() : waiting.push({ count: n, resolve })));
  return { logger, lines, count };
}

/** Everything written to stderr (ioredis prints its own warnings there), while `body` runs. */
async function stderrOf(body: () => Promise<void>): Promise<string> {
  let printed = '';
  const write = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    printed += String(chunk);
    return true;
  });
  const warn = vi.spyOn(console, 'warn').mockImplementation((...args: unknown[]) => {
    printed += `${args.join(' ')}\n`;
  });
  const error = vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => {
    printed += `${args.join(' ')}\n`;
  });
  try {
    await body();
  } finally {
    write.mockRestore();
    warn.mockRestore();
    error.mockRestore();
  }
  return printed;
}

describe.skipIf(!canInjectFaults)(
  'the managed-service ACL rule (+@all -@dangerous -@admin, the namespace only)',
  () => {
    it('is enough for a race of two instances, waits, status and resets; nothing printed, INFO said once', async () => {
      const namespace = `acl-${randomUUID()}`;
      const url = await user(`managed-${namespace.slice(4, 12)}`, managedServiceRule(namespace));
      const { logger, lines, count } = recorder();
      const printed = await stderrOf(async () => {
        const nodes = [open(url, namespace, { logger }), open(url, namespace, { logger })];
        let runs = 0;
        const results = await Promise.all(
          nodes.flatMap((node) =>
            [1, 2, 3].map(() =>
              node.runDetailed('migrate', async () => {
                runs++;
                // Long enough for every connection a leader opens (the standby renewer's too) to be made.
                await new Promise((resolve) => setTimeout(resolve, 1000));
                return 'done once';
              }),
            ),
          ),
        );
        expect(runs).toBe(1);
        expect(results.map((r) => r.value)).toEqual(Array(6).fill('done once'));
        expect(results.filter((r) => r.role === 'leader')).toHaveLength(1);
        expect(await nodes[1]!.wait('migrate')).toBe('done once');
        expect(await nodes[0]!.status('migrate')).toMatchObject({ state: 'done', value: 'done once' });
        expect(await nodes[1]!.reset('migrate')).toEqual({ existed: true });
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
        // Each instance's eviction check meets a refused INFO, and says so once (bounded, so that a
        // check that says nothing fails on the lines below rather than by the test's timeout).
        await Promise.race([count(2), new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
        await Promise.all(onces.splice(0).map((once) => once.close()));
      });
      // ioredis' ready check (INFO) would print "Skipping the ready check …" for every connection.
      expect(printed).toBe('');
      expect(lines).toEqual([
        expect.objectContaining({
          level: 'info',
          fields: expect.objectContaining({ check: 'eviction', result: 'unknown' }),
        }),
        expect.objectContaining({
          level: 'info',
          fields: expect.objectContaining({ check: 'eviction', result: 'unknown' }),
        }),
      ]);
      expect(lines[0]!.message).toMatch(
        /eviction policy of Redis at 127\.0\.0\.1:\d+ is unknown: this ACL user may not run INFO; make sure maxmemory-policy is noeviction/,
      );
    });

    it('is enough for a crashed leader to be taken over', async () => {
      const namespace = `acl-${randomUUID()}`;
      const url = await user(`mcrash-${namespace.slice(4, 12)}`, managedServiceRule(namespace));
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

    it("still keeps other namespaces' keys and channels out of reach, with a typed refusal", async () => {
      const namespace = `acl-${randomUUID()}`;
      const url = await user(`mother-${namespace.slice(4, 12)}`, managedServiceRule(namespace));
      const once = open(url, `${namespace}-other`);
      const started = performance.now();
      const error = await once.status('k').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RedisUnavailableError);
      expect(error).toMatchObject({ reason: 'noperm' });
      expect((error as Error).message).toMatch(
        /refused the read script for this ACL user .*keys \(~<namespace>:\*\)/,
      );
      expect(performance.now() - started).toBeLessThan(2000);
    });
  },
);
