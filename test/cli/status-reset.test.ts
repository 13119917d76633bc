import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createOnce } from '../../src/index.js';
import { type RedisServer, startRedis } from '../helpers/redis-server.js';
import { killAllClis, runCli } from './cli.js';

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis({ name: 'cli-status' });
});
afterEach(killAllClis);
afterAll(async () => {
  await redis.stop();
});

describe('redis-once status and reset', () => {
  it('reports idle, then done with the value, as text and as the exact status() object in --json', async () => {
    const namespace = `status-${randomUUID()}`;
    const admin = ['--key', 'migrate:v7', '--redis', redis.url, '--namespace', namespace];

    const idle = await runCli(['status', ...admin]);
    expect(idle.result.code).toBe(0);
    expect(idle.stdout).toBe('"migrate:v7" has not run (or was reset)\n  state     idle\n  attempts  0\n');

    const ran = await runCli(['run', ...admin, '--node-id', 'pod-a', '--', 'true']);
    expect(ran.result.code).toBe(0);

    const text = await runCli(['status', ...admin]);
    expect(text.result.code).toBe(0);
    expect(text.stdout).toMatch(/^"migrate:v7" is done\n/);
    expect(text.stdout).toMatch(/\n {2}owner +pod-a\n/);
    expect(text.stdout).toMatch(/\n {2}fencing token +\d+\n/);
    expect(text.stdout).toMatch(/\n {2}attempts +1\n/);
    expect(text.stdout).toMatch(/\n {2}finished +\d{4}-\d\d-\d\dT.*Z \(.* ago; took .*\)\n/);
    expect(text.stdout).toMatch(/\n {2}value +\{"node":"pod-a","durationMs":\d+\}\n/);

    const json = await runCli(['status', ...admin, '--json']);
    expect(json.result.code).toBe(0);
    const once = createOnce({ redis: redis.url, namespace });
    try {
      expect(JSON.parse(json.stdout)).toEqual(await once.status('migrate:v7'));
    } finally {
      await once.close();
    }
    expect(JSON.parse(json.stdout)).toMatchObject({ state: 'done', owner: 'pod-a', attempts: 1 });

    const reset = await runCli(['reset', ...admin]);
    expect(reset.result.code).toBe(0);
    expect(reset.stdout).toBe('"migrate:v7" was reset; the next run will run the command again\n');
    expect(JSON.parse((await runCli(['status', ...admin, '--json'])).stdout)).toEqual({
      state: 'idle',
      attempts: 0,
    });
    const again = await runCli(['reset', ...admin]);
    expect(again.result.code).toBe(0);
    expect(again.stdout).toBe('"migrate:v7" had no state; nothing to reset\n');
  });

  it('shows the last error of a failed key', async () => {
    const namespace = `status-${randomUUID()}`;
    const admin = ['--key', 'broken', '--redis', redis.url, '--namespace', namespace];
    expect((await runCli(['run', ...admin, '--', 'sh', '-c', 'exit 3'])).result.code).toBe(3);
    const text = await runCli(['status', ...admin]);
    expect(text.stdout).toMatch(/^"broken" failed \(the next run takes over while attempts remain\)\n/);
    expect(text.stdout).toMatch(
      /\n {2}last error +CommandFailedError: the command \(sh\) exited with code 3\n/,
    );
  });
});
