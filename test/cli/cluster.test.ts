import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/gate.js';
import { canInjectFaults, type RedisServer, startRedis } from '../helpers/redis-server.js';
import { Cli, killAllClis, runCli } from './cli.js';

const exec = promisify(execFile);

/** `--cluster host:port,…`: three masters, all slots assigned, as in test/integration/cluster.test.ts. */
describe.skipIf(!canInjectFaults)('redis-once --cluster', () => {
  let nodes: RedisServer[];
  beforeAll(async () => {
    nodes = await Promise.all(
      [1, 2, 3].map((i) =>
        startRedis({
          name: `cli-cluster-${i}`,
          args: ['--cluster-enabled', 'yes', '--cluster-node-timeout', '2000'],
        }),
      ),
    );
    await exec('redis-cli', [
      '--cluster',
      'create',
      ...nodes.map((n) => `${n.host}:${n.port}`),
      '--cluster-yes',
    ]);
    const admin = nodes[0]!.client();
    await waitFor(async () => (await admin.cluster('INFO')).includes('cluster_state:ok'), {
      timeoutMs: 15_000,
      what: 'the cluster to be ok',
    });
    admin.disconnect();
  }, 30_000);
  afterEach(killAllClis);
  afterAll(async () => {
    await Promise.all(nodes.map((node) => node.stop()));
  });

  it('runs the command once across processes, and status reads it back', async () => {
    const seeds = nodes.map((n) => `${n.host}:${n.port}`).join(',');
    const flags = ['--key', 'migrate:c1', '--cluster', seeds, '--namespace', `cluster-${randomUUID()}`];
    const leader = Cli.start([
      'run',
      ...flags,
      '--',
      'sh',
      '-c',
      'echo "ran $ONCE_FENCING_TOKEN"; sleep 0.5',
    ]);
    await leader.waitFor('stdout', /ran \d+/);
    const follower = Cli.start(['run', ...flags, '--', 'sh', '-c', 'echo "ran too"']);

    expect((await leader.exit()).code).toBe(0);
    expect((await follower.exit()).code).toBe(0);
    expect(follower.stdout).toBe('');
    expect(follower.stderr).toMatch(/"migrate:c1" (is done by|was already done)/);
    const status = await runCli(['status', ...flags, '--json']);
    expect(status.result.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ state: 'done', attempts: 1 });
  });
});
