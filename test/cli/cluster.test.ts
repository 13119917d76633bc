import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { canInjectFaults, type RedisServer } from '../helpers/redis-server.js';
import { startCluster } from '../helpers/topologies.js';
import { Cli, killAllClis, runCli } from './cli.js';

/** `--cluster host:port,…`: three masters, all slots assigned, see test/helpers/topologies.ts. */
describe.skipIf(!canInjectFaults)('redis-once --cluster', () => {
  let nodes: RedisServer[];
  beforeAll(async () => {
    nodes = await startCluster('cli-cluster');
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
