/**
 * `redis-once list`: every once-key of one namespace (SCAN, never KEYS), with its state, owner,
 * attempts and age; a namespace is matched as itself, never as a glob pattern.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/exit-codes.js';
import { formatList } from '../../src/cli/list.js';
import { createOnce } from '../../src/index.js';
import { type RedisServer, startRedis } from '../helpers/redis-server.js';
import { closedPort } from '../helpers/topologies.js';
import { runCli } from './cli.js';

let redis: RedisServer;

beforeAll(async () => {
  redis = await startRedis({ name: 'cli-list' });
});
afterAll(async () => {
  await redis.stop();
});

/** Keys in each state, written through the library as a run would. */
async function seed(namespace: string): Promise<void> {
  const once = createOnce({ redis: redis.url, namespace, nodeId: 'seed-node', leaseMs: 5_000 });
  try {
    await once.run('migrate:1', () => 'ok');
    await once.run('migrate:2', () => 'ok');
    await expect(
      once.run('warm:cache', () => Promise.reject(new Error('cache down')), { maxAttempts: 1 }),
    ).rejects.toThrow('cache down');
    await once.run('gone', () => 'ok');
    await once.reset('gone');
  } finally {
    await once.close();
  }
}

describe('redis-once list', () => {
  it('lists each key of the namespace with its state, owner and attempts; --state filters', async () => {
    const namespace = `list-${randomUUID()}`;
    await seed(namespace);
    await seed(`${namespace}-other`);
    const flags = ['list', '--redis', redis.url, '--namespace', namespace];

    const json = await runCli([...flags, '--json']);
    expect(json.result.code).toBe(0);
    const listed = JSON.parse(json.stdout) as Array<Record<string, unknown>>;
    expect(listed.map((k) => [k.key, k.state, k.owner, k.attempts])).toEqual([
      ['migrate:1', 'done', 'seed-node', 1],
      ['migrate:2', 'done', 'seed-node', 1],
      ['warm:cache', 'failed', 'seed-node', 1],
    ]);
    expect(listed[2]).toMatchObject({ error: { name: 'Error', message: 'cache down' } });
    expect(listed[0]).not.toHaveProperty('value');

    const failed = await runCli([...flags, '--state', 'failed']);
    expect(failed.result.code).toBe(0);
    expect(failed.stdout).toMatch(
      /^KEY +STATE +OWNER +ATTEMPTS +AGE\nwarm:cache +failed +seed-node +1 +\d+(\.\d+)? m?s\n$/,
    );
  });

  it('matches the namespace as itself: glob characters in it select nothing else', async () => {
    const id = randomUUID();
    await seed(`${id}-a`);
    await seed(`${id}-[ab]`);
    const listed = await runCli(['list', '--redis', redis.url, '--namespace', `${id}-[ab]`, '--json']);
    expect(JSON.parse(listed.stdout)).toHaveLength(3);
    const star = await runCli(['list', '--redis', redis.url, '--namespace', `${id}*`, '--json']);
    expect(JSON.parse(star.stdout)).toEqual([]);
  });

  it('walks more keys than one SCAN call returns', async () => {
    const namespace = `list-many-${randomUUID()}`;
    const once = createOnce({ redis: redis.url, namespace });
    try {
      await Promise.all(Array.from({ length: 600 }, (_, i) => once.run(`k${i}`, () => i)));
    } finally {
      await once.close();
    }
    const cli = await runCli(['list', '--redis', redis.url, '--namespace', namespace, '--json']);
    expect(JSON.parse(cli.stdout)).toHaveLength(600);
  });

  it('says so when the namespace has no keys, and refuses an unknown --state with 64', async () => {
    const empty = await runCli(['list', '--redis', redis.url, '--namespace', `none-${randomUUID()}`]);
    expect(empty.result.code).toBe(0);
    expect(empty.stdout).toMatch(/^no once-keys in namespace "none-/);
    const bad = await runCli(['list', '--redis', redis.url, '--state', 'stuck']);
    expect(bad.result.code).toBe(EXIT.USAGE);
    expect(bad.stderr).toMatch(/--state "stuck" is not one of running, done, failed/);
  });

  it('exits 69 when Redis is unreachable', async () => {
    const port = await closedPort();
    const cli = await runCli(['list', '--redis', `redis://127.0.0.1:${port}`, '--redis-timeout', '500ms']);
    expect(cli.result.code).toBe(EXIT.REDIS_UNAVAILABLE);
  });
});

describe('formatList', () => {
  it('aligns the columns and shows the age since a key finished, or started', () => {
    const now = 1_000_000;
    const text = formatList(
      'ns',
      [
        {
          key: 'a',
          state: 'done',
          owner: 'pod-1',
          attempts: 1,
          startedAt: now - 9_000,
          finishedAt: now - 5_000,
        },
        { key: 'long-key', state: 'running', owner: 'pod-22', attempts: 2, startedAt: now - 2_000 },
      ],
      now,
    );
    expect(text).toBe(
      'KEY       STATE    OWNER   ATTEMPTS  AGE\n' +
        'a         done     pod-1   1         5.0 s\n' +
        'long-key  running  pod-22  2         2.0 s\n',
    );
  });
});
