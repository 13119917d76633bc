/**
 * `redis-once wait`: exits 0 once the key is done, never runs or claims anything, and ends with the
 * codes `run` uses for a timeout (75), attempts spent (70) and Redis unreachable (69).
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/exit-codes.js';
import { type RedisServer, startRedis } from '../helpers/redis-server.js';
import { closedPort } from '../helpers/topologies.js';
import { Cli, killAllClis, runCli } from './cli.js';

let redis: RedisServer;
let dir: string;
let namespace: string;

beforeAll(async () => {
  redis = await startRedis({ name: 'cli-wait' });
});
afterAll(async () => {
  await redis.stop();
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'redis-once-wait-'));
  namespace = `wait-${randomUUID()}`;
});
afterEach(async () => {
  await killAllClis();
  rmSync(dir, { recursive: true, force: true });
});

function flags(command: string, key: string, ...rest: string[]): string[] {
  return [command, '--key', key, '--redis', redis.url, '--namespace', namespace, ...rest];
}

/** A command that prints `started`, then waits (20 s at most) for the test to call release(). */
function gated(): string[] {
  const gate = join(dir, 'release');
  return [
    'sh',
    '-c',
    `echo started; i=0; while [ ! -e '${gate}' ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done`,
  ];
}

describe('redis-once wait', () => {
  it('exits 0 at once for a key done before, and --json prints its status', async () => {
    expect((await runCli([...flags('run', 'ready', '--node-id', 'job-1'), '--', 'true'])).result.code).toBe(
      0,
    );
    const cli = await runCli([...flags('wait', 'ready'), '--json']);
    expect(cli.result.code).toBe(0);
    expect(JSON.parse(cli.stdout)).toMatchObject({ state: 'done', owner: 'job-1', attempts: 1 });
    expect(cli.stderr).toMatch(
      /^redis-once: "ready" is done by job-1 \(fencing token \d+\); waited \d+(\.\d+)? m?s\n$/,
    );
  });

  it('waits for a running leader and exits 0 as soon as it is done', async () => {
    const leader = Cli.start([...flags('run', 'migrate', '--node-id', 'job-7'), '--', ...gated()]);
    await leader.waitFor('stdout', /started/);
    const app = Cli.start(flags('wait', 'migrate'));
    await app.waitFor('stderr', /waiting for "migrate" \(leader job-7/);
    writeFileSync(join(dir, 'release'), '');
    expect((await leader.exit()).code).toBe(0);
    expect((await app.exit()).code).toBe(0);
    expect(app.stderr).toMatch(/"migrate" is done by job-7/);
    expect(app.stdout).toBe('');
  });

  it('exits 70 with the last error once the key failed on every allowed attempt', async () => {
    const failing = ['sh', '-c', 'echo "migration 0042 failed: disk full" >&2; exit 2'];
    await runCli([...flags('run', 'broken', '--max-attempts', '1'), '--', ...failing]);
    const cli = await runCli([...flags('wait', 'broken', '--max-attempts', '1'), '--json']);
    expect(cli.result.code).toBe(EXIT.FAILED_ELSEWHERE);
    expect(cli.stderr).toMatch(/"broken" failed on all 1 attempt\(s\) .*migration 0042 failed: disk full/);
    expect(JSON.parse(cli.stdout)).toMatchObject({ state: 'failed', attempts: 1 });
  });

  it('waits, by its own --max-attempts, for a takeover while attempts remain', async () => {
    await runCli([...flags('run', 'retry', '--max-attempts', '1'), '--', 'false']);
    // The runs allow 3 attempts: one failed, the next run takes over. The wait sees it through.
    const app = Cli.start(flags('wait', 'retry', '--max-attempts', '3'));
    await app.waitFor('stderr', /waiting for "retry"/);
    expect((await runCli([...flags('run', 'retry', '--max-attempts', '3'), '--', 'true'])).result.code).toBe(
      0,
    );
    expect((await app.exit()).code).toBe(0);
  });

  it('gives up after --timeout with 75, and never claims the key', async () => {
    const cli = await runCli([...flags('wait', 'nobody', '--timeout', '400ms'), '--json']);
    expect(cli.result.code).toBe(EXIT.WAIT_TIMEOUT);
    expect(cli.stderr).toMatch(/gave up waiting for "nobody" after 400 ms \(--timeout\)/);
    expect(JSON.parse(cli.stdout)).toEqual({ state: 'idle', attempts: 0 });
    // Nothing was written for the key: a wait never claims.
    expect(await redis.client().keys(`${namespace}:*nobody*`)).toEqual([]);
  });

  it('stops waiting on SIGTERM with 143; the leader goes on', async () => {
    const leader = Cli.start([...flags('run', 'long'), '--', ...gated()]);
    await leader.waitFor('stdout', /started/);
    const app = Cli.start(flags('wait', 'long'));
    await app.waitFor('stderr', /waiting for "long"/);
    app.signal('SIGTERM');
    expect((await app.exit()).code).toBe(143);
    writeFileSync(join(dir, 'release'), '');
    expect((await leader.exit()).code).toBe(0);
  });

  it('exits 69 when Redis is unreachable, within --redis-timeout', async () => {
    const port = await closedPort();
    const cli = await runCli([
      'wait',
      '--key',
      'k',
      '--redis',
      `redis://:hunter2@127.0.0.1:${port}`,
      '--redis-timeout',
      '500ms',
    ]);
    expect(cli.result.code).toBe(EXIT.REDIS_UNAVAILABLE);
    expect(cli.stderr).toMatch(/Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+ is unreachable/);
    expect(cli.output).not.toContain('hunter2');
  });

  it('refuses a missing --key as a usage error (64)', async () => {
    const cli = await runCli(['wait', '--redis', redis.url]);
    expect(cli.result.code).toBe(EXIT.USAGE);
    expect(cli.stderr).toMatch(/required option '-k, --key <key>' not specified/);
  });
});
