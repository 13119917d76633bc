/**
 * `redis-once doctor` against real servers, each configured with one setting that breaks (or
 * weakens) exactly-once: it names the setting, says what to change, and exits 78 when the guarantees
 * would break.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Finding, judgeServer, type ServerFacts, versionAtLeast } from '../../src/cli/doctor.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { type RedisServer, startRedis } from '../helpers/redis-server.js';
import { closedPort } from '../helpers/topologies.js';
import { runCli } from './cli.js';

interface Run {
  code: number | null;
  findings: Finding[];
}

async function doctor(url: string, ...rest: string[]): Promise<Run> {
  const cli = await runCli(['doctor', '--redis', url, '--json', ...rest]);
  return { code: cli.result.code, findings: JSON.parse(cli.stdout || '[]') as Finding[] };
}

function finding(run: Run, check: Finding['check']): Finding | undefined {
  return run.findings.find((f) => f.check === check);
}

/** One server per setting, started together (each is a few MB). */
const SETTINGS = {
  healthy: ['--appendonly', 'yes'],
  evicting: ['--maxmemory', '100mb', '--maxmemory-policy', 'allkeys-lru'],
  volatileNoLimit: ['--maxmemory-policy', 'volatile-lru'],
  smallPubsubBuffer: ['--client-output-buffer-limit', 'pubsub 4096 2048 60'],
  noScripts: [
    '--rename-command',
    'EVALSHA',
    'evalsha-renamed-away',
    '--rename-command',
    'EVAL',
    'eval-renamed-away',
  ],
  plain: [],
} satisfies Record<string, string[]>;

const servers = {} as Record<keyof typeof SETTINGS, RedisServer>;
let replica: RedisServer;

beforeAll(async () => {
  await Promise.all(
    Object.entries(SETTINGS).map(async ([name, args]) => {
      servers[name as keyof typeof SETTINGS] = await startRedis({ name: `doctor-${name}`, args });
    }),
  );
  replica = await startRedis({
    name: 'doctor-replica',
    args: ['--replicaof', servers.plain.host, String(servers.plain.port)],
  });
  // The master counts its replica once the replica has connected.
  const master = servers.plain.client();
  for (let i = 0; i < 200 && !/connected_slaves:1/.test(await master.info('replication')); i++) {
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}, 30_000);
afterAll(async () => {
  await replica.stop();
  await Promise.all(Object.values(servers).map((server) => server.stop()));
});

describe('redis-once doctor', () => {
  it('finds nothing wrong with a persistent, non-evicting server, and exits 0', async () => {
    const run = await doctor(servers.healthy.url);
    expect(run.code).toBe(0);
    expect(run.findings.map((f) => [f.check, f.level])).toEqual([
      ['version', 'ok'],
      ['eviction', 'ok'],
      ['persistence', 'ok'],
      ['pubsub-buffer', 'ok'],
      ['replicas', 'ok'],
      ['permissions', 'ok'],
    ]);
  });

  it('fails an eviction policy that can drop a lease once memory is full (78)', async () => {
    const run = await doctor(servers.evicting.url);
    expect(run.code).toBe(EXIT.CONFIG);
    expect(finding(run, 'eviction')).toMatchObject({
      level: 'fail',
      message: expect.stringMatching(/maxmemory-policy allkeys-lru can evict a lease/),
      fix: expect.stringMatching(/maxmemory-policy noeviction/),
    });
  });

  it('warns of an evicting policy with no maxmemory yet, and exits 0', async () => {
    const run = await doctor(servers.volatileNoLimit.url);
    expect(run.code).toBe(0);
    expect(finding(run, 'eviction')).toMatchObject({ level: 'warn' });
  });

  it('warns of no persistence: a restart forgets done states', async () => {
    const run = await doctor(servers.evicting.url);
    expect(finding(run, 'persistence')).toMatchObject({
      level: 'warn',
      message: expect.stringMatching(/restart forgets every done state/),
    });
  });

  it('fails a pubsub output buffer limit below the largest completion message', async () => {
    const run = await doctor(servers.smallPubsubBuffer.url);
    expect(run.code).toBe(EXIT.CONFIG);
    expect(finding(run, 'pubsub-buffer')).toMatchObject({
      level: 'fail',
      message: expect.stringMatching(/\(2048 bytes\) is below the largest completion message/),
    });
  });

  it('fails when scripting is disabled (EVAL and EVALSHA renamed away)', async () => {
    const run = await doctor(servers.noScripts.url);
    expect(run.code).toBe(EXIT.CONFIG);
    expect(finding(run, 'permissions')).toMatchObject({
      level: 'fail',
      fix: expect.stringMatching(/scripting or pub\/sub is disabled/),
    });
  });

  it('warns of replicas without replicaAck on the master, and fails when pointed at the replica', async () => {
    const onMaster = await doctor(servers.plain.url);
    expect(finding(onMaster, 'replicas')).toMatchObject({
      level: 'warn',
      message: expect.stringMatching(/^1 replica\(s\) attached/),
      fix: expect.stringMatching(/replicaAck/),
    });
    const onReplica = await doctor(replica.url);
    expect(onReplica.code).toBe(EXIT.CONFIG);
    expect(finding(onReplica, 'replicas')).toMatchObject({
      level: 'fail',
      message: expect.stringMatching(/this server is a replica/),
    });
  });

  it('reports a user without a permission redis-once needs, and settings it may not read as unknown', async () => {
    const admin = servers.healthy.client();
    await admin.call(
      'ACL',
      'SETUSER',
      'nosub',
      'on',
      '>nosub-pass',
      '~*',
      '&*',
      '+@all',
      '-subscribe',
      '-config',
    );
    const run = await doctor(`redis://nosub:nosub-pass@${servers.healthy.host}:${servers.healthy.port}`);
    expect(run.code).toBe(EXIT.CONFIG);
    expect(finding(run, 'permissions')).toMatchObject({
      level: 'fail',
      message: expect.stringMatching(/^a run .* was refused: .*NOPERM .*'subscribe' command/),
    });
    // INFO still says the eviction policy and AOF; CONFIG GET was refused.
    expect(finding(run, 'eviction')).toMatchObject({ level: 'ok' });
    expect(finding(run, 'persistence')).toMatchObject({ level: 'ok', message: 'AOF persistence is on' });
    expect(JSON.stringify(run.findings)).not.toContain('nosub-pass');
  });

  it('prints each finding with what to change, and a verdict', async () => {
    const cli = await runCli(['doctor', '--redis', servers.evicting.url]);
    expect(cli.result.code).toBe(EXIT.CONFIG);
    expect(cli.stdout).toMatch(/^FAIL {2}eviction \(127\.0\.0\.1:\d+\): maxmemory-policy allkeys-lru/m);
    expect(cli.stdout).toMatch(/^ {8}→ CONFIG SET maxmemory-policy noeviction/m);
    expect(cli.stdout).toMatch(/1 problem\(s\) would break exactly-once/);
  });

  it('exits 69 when Redis is unreachable', async () => {
    const port = await closedPort();
    const cli = await runCli(['doctor', '--redis', `redis://127.0.0.1:${port}`, '--redis-timeout', '500ms']);
    expect(cli.result.code).toBe(EXIT.REDIS_UNAVAILABLE);
  });
});

describe('judgeServer', () => {
  const base: ServerFacts = {
    server: 'h:1',
    version: '7.2.4',
    role: 'master',
    connectedReplicas: 0,
    clusterEnabled: false,
    clusterState: undefined,
    config: {
      maxmemory: '0',
      'maxmemory-policy': 'noeviction',
      save: '3600 1',
      appendonly: 'no',
      'client-output-buffer-limit': 'normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60',
    },
    maxmemoryPolicy: 'noeviction',
    maxmemory: 0,
    aofEnabled: false,
  };
  const level = (facts: Partial<ServerFacts>, check: Finding['check']) =>
    judgeServer({ ...base, ...facts }).find((f) => f.check === check)?.level;

  it('holds a Redis to 6.2, and a Cluster to 7 (sharded pub/sub)', () => {
    expect(level({ version: '6.2.0' }, 'version')).toBe('ok');
    expect(level({ version: '6.0.16' }, 'version')).toBe('fail');
    expect(level({ version: '6.2.14', clusterEnabled: true, clusterState: 'ok' }, 'version')).toBe('fail');
    expect(level({ version: '7.0.0', clusterEnabled: true, clusterState: 'ok' }, 'version')).toBe('ok');
  });

  it('fails a Cluster whose slots are not all served', () => {
    expect(level({ clusterEnabled: true, clusterState: 'fail' }, 'cluster')).toBe('fail');
  });

  it('counts RDB snapshots as persistence', () => {
    expect(level({}, 'persistence')).toBe('ok');
  });

  it('compares versions part by part', () => {
    expect(versionAtLeast('10.0.0', [6, 2])).toBe(true);
    expect(versionAtLeast('6.10', [6, 2])).toBe(true);
    expect(versionAtLeast('6.1.9', [6, 2])).toBe(false);
  });
});
