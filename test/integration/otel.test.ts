/**
 * `redis-once/otel` against a real redis-server, recorded by the OpenTelemetry SDK's in-memory
 * exporters: the span and metric names DESIGN.md gives, fn's spans nested in the leader's, and a
 * follower's span linked to the leader's span — in this process and across two processes.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once as onceEvent } from 'node:events';
import { fileURLToPath } from 'node:url';
import { SpanStatusCode, trace } from '@opentelemetry/api';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createOnce, LeaseLostError, type Once } from '../../src/index.js';
import { enableOpenTelemetry } from '../../src/otel.js';
import { gate, waitFor } from '../helpers/gate.js';
import { points, type SpanRecord, spanRecord, type TestTelemetry, testTelemetry } from '../helpers/otel.js';
import { type RedisServer, startRedis } from '../helpers/redis-server.js';

let redis: RedisServer;
let telemetry: TestTelemetry;
let disable: () => void;
const cleanups: Array<() => unknown> = [];

beforeAll(async () => {
  redis = await startRedis({ name: 'otel' });
});
beforeEach(() => {
  telemetry = testTelemetry();
  disable = enableOpenTelemetry({
    tracerProvider: telemetry.tracerProvider,
    meterProvider: telemetry.meterProvider,
  });
});
afterEach(async () => {
  disable();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await telemetry.shutdown();
});
afterAll(async () => {
  await redis.stop();
});

function open(namespace: string, options: Partial<Parameters<typeof createOnce>[0]> = {}): Once {
  const instance = createOnce({ redis: redis.url, namespace, ...options });
  cleanups.push(() => instance.close());
  return instance;
}

/** A follower of `key` waits (subscribed) for the leader: it follows, rather than reads a done state. */
async function subscribed(namespace: string, key: string): Promise<void> {
  const admin = redis.client();
  try {
    await waitFor(async () => Number((await admin.pubsub('NUMSUB', `${namespace}:{${key}}:done`))[1]) === 1, {
      what: 'the follower to subscribe',
    });
  } finally {
    admin.disconnect();
  }
}

function spans(name: string): SpanRecord[] {
  return telemetry
    .spans()
    .map(spanRecord)
    .filter((span) => span.name === name);
}

describe('spans', () => {
  it('one redis-once.run span per call, with the attributes DESIGN.md names; fn runs inside the leader’s span; the follower links to it', async () => {
    const namespace = `otel-${randomUUID()}`;
    const [a, b] = [open(namespace), open(namespace)];
    const leading = gate();
    const release = gate();
    const tracer = telemetry.tracerProvider.getTracer('migration');
    const leader = a.runDetailed('schema', async () => {
      await tracer.startActiveSpan('migrate', async (span) => {
        leading.open();
        await release.promise;
        span.end();
      });
      return 'v1';
    });
    await leading.promise;
    const follower = b.runDetailed('schema', async () => 'never');
    await subscribed(namespace, 'schema');
    release.open();
    const [led, followed] = await Promise.all([leader, follower]);
    expect([led.role, followed.role]).toEqual(['leader', 'follower']);

    const runs = spans('redis-once.run');
    expect(runs).toHaveLength(2);
    const leaderSpan = runs.find((span) => span.attributes['redis_once.role'] === 'leader')!;
    const followerSpan = runs.find((span) => span.attributes['redis_once.role'] === 'follower')!;
    expect(leaderSpan.attributes).toEqual({
      'redis_once.key': 'schema',
      'redis_once.namespace': namespace,
      'redis_once.role': 'leader',
      'redis_once.fencing_token': led.fencingToken,
      'redis_once.attempt': 1,
    });
    expect(followerSpan.attributes['redis_once.fencing_token']).toBe(led.fencingToken);
    expect(followerSpan.links).toEqual([{ traceId: leaderSpan.traceId, spanId: leaderSpan.spanId }]);
    expect(leaderSpan.links).toEqual([]);
    expect(followed.leaderTrace).toBe(`00-${leaderSpan.traceId}-${leaderSpan.spanId}-01`);

    const [migrate] = spans('migrate');
    expect(migrate!.parentSpanId).toBe(leaderSpan.spanId);
    expect(migrate!.traceId).toBe(leaderSpan.traceId);
  });

  it('a call’s span is a child of the caller’s active span; a cached call links to the leader too', async () => {
    const namespace = `otel-${randomUUID()}`;
    const a = open(namespace);
    const tracer = telemetry.tracerProvider.getTracer('app');
    await tracer.startActiveSpan('deploy', async (deploy) => {
      await a.run('k', async () => 'v');
      deploy.end();
    });
    // A second instance finds the key done on its first read.
    const cached = await open(namespace).runDetailed('k', async () => 'never');
    expect(cached.role).toBe('cached');
    const [deploy] = spans('deploy');
    const [leaderSpan, cachedSpan] = spans('redis-once.run');
    expect(leaderSpan!.parentSpanId).toBe(deploy!.spanId);
    expect(cachedSpan!.attributes['redis_once.role']).toBe('cached');
    expect(cachedSpan!.links).toEqual([{ traceId: leaderSpan!.traceId, spanId: leaderSpan!.spanId }]);
  });

  it('a failed call: status ERROR and error.type, and the duration recorded with its outcome', async () => {
    const namespace = `otel-${randomUUID()}`;
    const a = open(namespace, { maxAttempts: 1 });
    class MigrationError extends Error {
      override name = 'MigrationError';
    }
    await expect(
      a.run('k', async () => {
        throw new MigrationError('column exists');
      }),
    ).rejects.toThrow('column exists');
    const [span] = spans('redis-once.run');
    expect(span!.status).toBe(SpanStatusCode.ERROR);
    expect(span!.attributes['error.type']).toBe('MigrationError');
    const durations = points(await telemetry.metrics(), 'redis_once.run.duration');
    expect(durations.map((p) => p.attributes)).toEqual([
      { 'redis_once.namespace': namespace, 'redis_once.role': 'leader', 'redis_once.outcome': 'error' },
    ]);
  });

  it('wait() has its own span, redis-once.wait, linked to the run it waited for', async () => {
    const namespace = `otel-${randomUUID()}`;
    const a = open(namespace);
    const leading = gate();
    const release = gate();
    const run = a.run('k', async () => {
      leading.open();
      await release.promise;
      return 'v';
    });
    await leading.promise;
    const waited = open(namespace).wait('k', { waitTimeoutMs: 10_000 });
    await subscribed(namespace, 'k');
    release.open();
    await expect(Promise.all([run, waited])).resolves.toEqual(['v', 'v']);
    const [runSpan] = spans('redis-once.run');
    const [waitSpan] = spans('redis-once.wait');
    expect(waitSpan!.attributes['redis_once.key']).toBe('k');
    expect(waitSpan!.links).toEqual([{ traceId: runSpan!.traceId, spanId: runSpan!.spanId }]);
  });
});

describe('metrics', () => {
  it('run durations by role and outcome, attempts, takeovers, lost leases and leases held', async () => {
    const namespace = `otel-${randomUUID()}`;
    const [a, b] = [open(namespace), open(namespace)];
    // A failed attempt, taken over by the next caller.
    await expect(
      a.run('failing', async () => {
        throw new Error('first try');
      }),
    ).rejects.toThrow('first try');
    await expect(b.run('failing', async () => 'v')).resolves.toBe('v');
    // A lease taken by a forced reset while fn runs: lost.
    const leading = gate();
    const signalled = gate();
    const lost = a.run('reset', async (ctx) => {
      leading.open();
      ctx.signal.addEventListener('abort', () => signalled.open());
      await signalled.promise;
      return 'late';
    });
    await leading.promise;
    let metrics = await telemetry.metrics();
    expect(points(metrics, 'redis_once.leases.held').map((p) => p.value)).toEqual([1]);
    await b.reset('reset', { force: true });
    await expect(lost).rejects.toBeInstanceOf(LeaseLostError);

    metrics = await telemetry.metrics();
    const sum = (name: string) => points(metrics, name).reduce((total, p) => total + Number(p.value), 0);
    expect({
      attempts: sum('redis_once.attempts'),
      takeovers: sum('redis_once.takeovers'),
      lost: sum('redis_once.leases.lost'),
      held: sum('redis_once.leases.held'),
    }).toEqual({ attempts: 3, takeovers: 1, lost: 1, held: 0 });
    const durations = points(metrics, 'redis_once.run.duration').map((p) => ({
      ...p.attributes,
      count: (p.value as { count: number }).count,
    }));
    const leader = { 'redis_once.namespace': namespace, 'redis_once.role': 'leader' };
    expect(durations).toEqual(
      expect.arrayContaining([
        { ...leader, 'redis_once.outcome': 'error', count: 1 },
        { ...leader, 'redis_once.outcome': 'done', count: 1 },
        { ...leader, 'redis_once.outcome': 'lease_lost', count: 1 },
      ]),
    );
    expect(durations).toHaveLength(3);
  });

  it('the function it returns stops it: later calls record nothing', async () => {
    const namespace = `otel-${randomUUID()}`;
    const a = open(namespace);
    await a.run('first', async () => 1);
    disable();
    await a.run('second', async () => 2);
    expect(spans('redis-once.run').map((span) => span.attributes['redis_once.key'])).toEqual(['first']);
    expect(trace.getActiveSpan()).toBeUndefined();
  });
});

const workerMain = fileURLToPath(new URL('../helpers/otel-worker-main.ts', import.meta.url));
const registerLua = fileURLToPath(new URL('../../scripts/register-lua.mjs', import.meta.url));

describe('across processes', () => {
  it('the follower’s span here links to the leader’s span in another process: one trace shows both', async () => {
    const namespace = `otel-${randomUUID()}`;
    const child: ChildProcess = fork(
      workerMain,
      [JSON.stringify({ url: redis.url, namespace, key: 'schema' })],
      {
        execArgv: ['--import', 'tsx', '--import', registerLua],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      },
    );
    const exited = onceEvent(child, 'exit');
    cleanups.push(async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    });
    const messages: Array<{ type: string; spans?: SpanRecord[] }> = [];
    const next = (type: string) =>
      new Promise<{ type: string; spans?: SpanRecord[] }>((resolve) => {
        const found = messages.find((m) => m.type === type);
        if (found) return resolve(found);
        const listener = (message: { type: string }) => {
          messages.push(message);
          if (message.type === type) {
            child.off('message', listener);
            resolve(message);
          }
        };
        child.on('message', listener);
      });
    await next('leading');
    const following = open(namespace).runDetailed('schema', async () => 'never');
    await subscribed(namespace, 'schema');
    child.send({ type: 'release' });
    const [result, reported] = await Promise.all([following, next('spans')]);
    expect(result).toMatchObject({ role: 'follower', value: 'migrated' });

    const remote = reported.spans!;
    const leaderSpan = remote.find((span) => span.name === 'redis-once.run')!;
    const migrate = remote.find((span) => span.name === 'migrate')!;
    expect(leaderSpan.attributes['redis_once.role']).toBe('leader');
    expect(migrate.parentSpanId).toBe(leaderSpan.spanId);
    const [followerSpan] = spans('redis-once.run');
    expect(followerSpan!.links).toEqual([{ traceId: leaderSpan.traceId, spanId: leaderSpan.spanId }]);
    expect(followerSpan!.attributes['redis_once.fencing_token']).toBe(
      leaderSpan.attributes['redis_once.fencing_token'],
    );
  });
});
