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

  it('lists keys from every master, and doctor checks each master and probes a sharded subscription', async () => {
    const seeds = nodes.map((n) => `${n.host}:${n.port}`).join(',');
    const namespace = `cluster-list-${randomUUID()}`;
    // Keys spread over the three masters' slots.
    const keys = Array.from({ length: 12 }, (_, i) => `key-${i}`);
    for (const key of keys) {
      const ran = await runCli([
        'run',
        '--key',
        key,
        '--cluster',
        seeds,
        '--namespace',
        namespace,
        '--',
        'true',
      ]);
      expect(ran.result.code).toBe(0);
    }
    const listed = await runCli(['list', '--cluster', seeds, '--namespace', namespace, '--json']);
    expect((JSON.parse(listed.stdout) as Array<{ key: string }>).map((k) => k.key)).toEqual([...keys].sort());

    const doctor = await runCli(['doctor', '--cluster', seeds, '--namespace', namespace, '--json']);
    const findings = JSON.parse(doctor.stdout) as Array<{ check: string; level: string; server: string }>;
    expect(
      new Set(findings.filter((f) => f.check === 'cluster').map((f) => `${f.server} ${f.level}`)),
    ).toEqual(new Set(nodes.map((n) => `${n.host}:${n.port} ok`)));
    expect(findings.find((f) => f.check === 'permissions')).toMatchObject({ level: 'ok' });
    expect(doctor.result.code).toBe(0);
  });
});
