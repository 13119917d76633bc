/**
 * `redis-once doctor [--json]`: checks what silently breaks exactly-once on this Redis, and says what
 * to change. Exits 0 when nothing would break the guarantees (warnings allowed), 78 (EX_CONFIG) when
 * something would, 69 when Redis is unreachable.
 *
 * Settings are read with INFO and CONFIG GET on every master (a managed Redis may refuse CONFIG: that
 * check is then reported as unknown, not failed). Permissions are checked by doing what a run does:
 * one real run of a probe key (`redis-once:doctor`, through the library: scripts, lease, completion),
 * its reset, and a (sharded) subscription to its channel. The probe leaves its fencing counter behind,
 * one small key, as every reset does.
 */
import type { Redis } from 'ioredis';
import { type Once, RedisUnavailableError } from '../index.js';
import { keyNames } from '../keys.js';
import type { AdminClient } from './admin-client.js';
import { adminCommand, type CommandFlags, withAdminClient } from './admin-command.js';
import type { Connection } from './connection.js';
import { EXIT } from './exit-codes.js';

export interface DoctorFlags extends CommandFlags {
  json?: boolean;
}

export type Level = 'ok' | 'warn' | 'fail' | 'unknown';

export interface Finding {
  check: 'version' | 'eviction' | 'persistence' | 'pubsub-buffer' | 'replicas' | 'cluster' | 'permissions';
  level: Level;
  /** Which master, as host:port. */
  server: string;
  /** What was found, one sentence. */
  message: string;
  /** What to change, when something should change. */
  fix?: string;
}

export const PROBE_KEY = 'redis-once:doctor';
/** Oldest Redis we support; a Cluster needs 7 (sharded pub/sub). */
const MIN_VERSION = [6, 2];
const MIN_CLUSTER_VERSION = [7, 0];
/** The largest completion message we publish: a value inlined up to 16 KiB, plus the state's fields. */
const LARGEST_MESSAGE_BYTES = 20 * 1024;

/** What one master's INFO and CONFIG GET said; undefined where it would not say. */
export interface ServerFacts {
  server: string;
  /** Undefined when INFO is refused (an ACL without @dangerous), as are the facts from INFO. */
  version: string | undefined;
  role: string | undefined;
  connectedReplicas: number;
  clusterEnabled: boolean;
  clusterState: string | undefined;
  /** CONFIG GET, or undefined when CONFIG is refused. */
  config: Record<string, string> | undefined;
  /** From INFO, for where CONFIG is refused. */
  maxmemoryPolicy: string | undefined;
  maxmemory: number | undefined;
  aofEnabled: boolean | undefined;
}

const CONFIG_PARAMETERS = [
  'maxmemory',
  'maxmemory-policy',
  'save',
  'appendonly',
  'client-output-buffer-limit',
];

export function doctorCommand(flags: DoctorFlags): Promise<number> {
  return adminCommand(flags, (once, connection) =>
    withAdminClient(connection, flags, async (admin) => {
      const findings = await examine(admin, once, connection, flags.namespace ?? 'once');
      process.stdout.write(flags.json ? `${JSON.stringify(findings, null, 2)}\n` : formatFindings(findings));
      return findings.some((f) => f.level === 'fail') ? EXIT.CONFIG : EXIT.OK;
    }),
  );
}

async function examine(
  admin: AdminClient,
  once: Once,
  connection: Connection,
  namespace: string,
): Promise<Finding[]> {
  const masters = await admin.masters();
  const findings: Finding[] = [];
  const facts = await Promise.all(masters.map((master) => factsOf(admin, master)));
  for (const server of facts) findings.push(...judgeServer(server));
  if (facts.some((f) => f.role !== undefined && f.role !== 'master')) {
    findings.push({
      check: 'permissions',
      level: 'unknown',
      server: connection.display,
      message: 'not probed: a replica takes no writes',
    });
  } else {
    findings.push(await probe(admin, once, connection, namespace));
  }
  return findings;
}

async function factsOf(admin: AdminClient, master: Redis): Promise<ServerFacts> {
  // A refusal (NOPERM, a command renamed on a managed Redis) leaves a fact unknown; no answer at all
  // is Redis unreachable.
  const refusedAs = async <T>(call: Promise<T>, fallback: T): Promise<T> => {
    try {
      return await call;
    } catch (error) {
      if (error instanceof RedisUnavailableError) throw error;
      return fallback;
    }
  };
  const infoText = await refusedAs(admin.call(master, 'INFO') as Promise<string>, undefined);
  const info = infoText === undefined ? undefined : parseInfo(String(infoText));
  // One parameter per CONFIG GET: Redis 6.2 takes a single pattern.
  let config: Record<string, string> | undefined = {};
  for (const parameter of CONFIG_PARAMETERS) {
    const pair = await refusedAs(
      admin.call(master, 'CONFIG', 'GET', parameter) as Promise<string[]>,
      undefined,
    );
    if (pair === undefined) {
      config = undefined;
      break;
    }
    if (pair.length >= 2) config[pair[0]!] = pair[1]!;
  }
  const clusterEnabled = info ? info.cluster_enabled === '1' : admin.isCluster;
  let clusterState: string | undefined;
  if (clusterEnabled) {
    const clusterInfo = await refusedAs(admin.call(master, 'CLUSTER', 'INFO') as Promise<string>, undefined);
    clusterState = clusterInfo === undefined ? undefined : parseInfo(String(clusterInfo)).cluster_state;
  }
  return {
    server: `${master.options.host}:${master.options.port}`,
    version: info?.redis_version,
    role: info?.role,
    connectedReplicas: Number(info?.connected_slaves ?? 0),
    clusterEnabled,
    clusterState,
    config,
    maxmemoryPolicy: info?.maxmemory_policy,
    maxmemory: info?.maxmemory === undefined ? undefined : Number(info.maxmemory),
    aofEnabled: info === undefined ? undefined : info.aof_enabled === '1',
  };
}

/** The checks of one master's settings: a pure function of what it said. */
export function judgeServer(facts: ServerFacts): Finding[] {
  const { server, config } = facts;
  const findings: Finding[] = [];
  const min = facts.clusterEnabled ? MIN_CLUSTER_VERSION : MIN_VERSION;
  findings.push(
    facts.version === undefined
      ? {
          check: 'version',
          level: 'unknown',
          server,
          message: 'the Redis version could not be read (INFO refused)',
          fix: `make sure it is ${min.join('.')} or newer`,
        }
      : versionAtLeast(facts.version, min)
        ? { check: 'version', level: 'ok', server, message: `Redis ${facts.version}` }
        : {
            check: 'version',
            level: 'fail',
            server,
            message: `Redis ${facts.version} is older than ${min.join('.')}${facts.clusterEnabled ? ', which a Cluster needs for sharded pub/sub' : ''}`,
            fix: `upgrade to Redis ${min.join('.')} or newer`,
          },
  );

  const policy = config?.['maxmemory-policy'] ?? facts.maxmemoryPolicy;
  const maxmemory = config?.maxmemory !== undefined ? Number(config.maxmemory) : facts.maxmemory;
  if (policy === undefined) {
    findings.push({
      check: 'eviction',
      level: 'unknown',
      server,
      message: 'the eviction policy could not be read (CONFIG GET and INFO refused)',
      fix: "check that maxmemory-policy is noeviction in your provider's settings",
    });
  } else if (policy === 'noeviction') {
    findings.push({ check: 'eviction', level: 'ok', server, message: 'maxmemory-policy is noeviction' });
  } else {
    // A lease has a TTL, so even volatile-* may evict it: two leaders. allkeys-* may drop a done state.
    const limited = maxmemory === undefined || maxmemory > 0;
    findings.push({
      check: 'eviction',
      level: limited ? 'fail' : 'warn',
      server,
      message: limited
        ? `maxmemory-policy ${policy} can evict a lease (two leaders at once) or a done state (the work runs again) when memory is full`
        : `maxmemory-policy ${policy} would evict leases or done states once a maxmemory is set (none is now)`,
      fix: 'CONFIG SET maxmemory-policy noeviction (and in redis.conf), or give redis-once a Redis whose memory never fills',
    });
  }

  if (config) {
    const aof = config.appendonly === 'yes';
    const rdb = (config.save ?? '').trim() !== '';
    findings.push(
      aof || rdb
        ? {
            check: 'persistence',
            level: 'ok',
            server,
            message: aof ? 'AOF persistence is on' : `RDB snapshots are on (save ${config.save})`,
          }
        : {
            check: 'persistence',
            level: 'warn',
            server,
            message:
              'no persistence: a restart forgets every done state (each key runs again) and fencing tokens rest on the server clock alone',
            fix: 'CONFIG SET appendonly yes (and in redis.conf), if a key must never run twice across a Redis restart',
          },
    );
    findings.push(pubsubBuffer(server, config['client-output-buffer-limit'] ?? ''));
  } else {
    findings.push({
      check: 'persistence',
      level: facts.aofEnabled ? 'ok' : 'unknown',
      server,
      message: facts.aofEnabled
        ? 'AOF persistence is on'
        : `persistence settings could not be read (CONFIG GET refused)${facts.aofEnabled === false ? '; INFO shows no AOF' : ''}`,
      ...(facts.aofEnabled ? {} : { fix: "check persistence in your provider's settings" }),
    });
    findings.push({
      check: 'pubsub-buffer',
      level: 'unknown',
      server,
      message: 'the pubsub output buffer limit could not be read (CONFIG GET refused)',
      fix: `make sure client-output-buffer-limit pubsub is at least ${LARGEST_MESSAGE_BYTES} bytes (the default, 32mb 8mb 60, is)`,
    });
  }

  if (facts.role === undefined) {
    findings.push({
      check: 'replicas',
      level: 'unknown',
      server,
      message: 'the replication role could not be read (INFO refused)',
      fix: 'make sure --redis names the master',
    });
  } else if (facts.role !== 'master') {
    findings.push({
      check: 'replicas',
      level: 'fail',
      server,
      message: `this server is a ${facts.role === 'slave' ? 'replica' : facts.role}: redis-once needs the master, which takes the writes`,
      fix: 'point --redis at the master (or let Sentinel or Cluster find it)',
    });
  } else if (facts.connectedReplicas > 0) {
    findings.push({
      check: 'replicas',
      level: 'warn',
      server,
      message: `${facts.connectedReplicas} replica(s) attached: a failover can lose a lease or done state not yet replicated`,
      fix: 'in Node.js, pass replicaAck: { replicas: 1 } to createOnce (WAIT after a claim and a completion) to narrow that window',
    });
  } else {
    findings.push({ check: 'replicas', level: 'ok', server, message: 'no replicas' });
  }

  if (facts.clusterEnabled) {
    findings.push(
      facts.clusterState === undefined
        ? { check: 'cluster', level: 'unknown', server, message: 'CLUSTER INFO was refused' }
        : facts.clusterState === 'ok'
          ? { check: 'cluster', level: 'ok', server, message: 'cluster_state is ok' }
          : {
              check: 'cluster',
              level: 'fail',
              server,
              message: `cluster_state is ${facts.clusterState ?? 'unknown'}: some slots are not served`,
              fix: 'fix the Cluster (redis-cli --cluster check)',
            },
    );
  }
  return findings;
}

/** `client-output-buffer-limit`'s pubsub class below our largest message disconnects waiters. */
function pubsubBuffer(server: string, setting: string): Finding {
  const match = /pubsub (\d+) (\d+) (\d+)/.exec(setting);
  if (!match) {
    return {
      check: 'pubsub-buffer',
      level: 'unknown',
      server,
      message: 'no pubsub output buffer limit found',
    };
  }
  const limits = [Number(match[1]), Number(match[2])].filter((n) => n > 0);
  const smallest = Math.min(...limits);
  if (limits.length === 0 || smallest >= LARGEST_MESSAGE_BYTES) {
    return {
      check: 'pubsub-buffer',
      level: 'ok',
      server,
      message: `pubsub output buffer limit ${match[1]} ${match[2]} ${match[3]}`,
    };
  }
  return {
    check: 'pubsub-buffer',
    level: 'fail',
    server,
    message: `the pubsub output buffer limit (${smallest} bytes) is below the largest completion message redis-once publishes (${LARGEST_MESSAGE_BYTES} bytes): waiters would be disconnected`,
    fix: 'CONFIG SET client-output-buffer-limit "pubsub 32mb 8mb 60" (the Redis default)',
  };
}

/** Permissions, scripting, pub/sub: one real run of the probe key, its reset, and a subscription. */
async function probe(
  admin: AdminClient,
  once: Once,
  connection: Connection,
  namespace: string,
): Promise<Finding> {
  const server = connection.display;
  const steps: Array<[string, () => Promise<unknown>]> = [
    // A probe left done by an earlier doctor would answer from its state: start from a fresh key.
    ['reset (the reset script)', () => once.reset(PROBE_KEY, { force: true })],
    [
      'a run (the scripts by EVALSHA and EVAL, the lease, the control channel subscription)',
      () => once.run(PROBE_KEY, () => 'ok'),
    ],
    ['status (the read script)', () => once.status(PROBE_KEY)],
    [
      'reset (the reset script, PUBLISH on the control channel)',
      () => once.reset(PROBE_KEY, { force: true }),
    ],
    ['subscribe to the key’s completion channel', () => subscribeProbe(admin, namespace)],
  ];
  for (const [what, step] of steps) {
    try {
      await step();
    } catch (error) {
      // A permission refused is this check's finding; Redis down, or TLS or AUTH refused, is exit 69.
      if (
        error instanceof RedisUnavailableError &&
        error.reason !== 'noperm' &&
        !/NOPERM|NOSCRIPT|unknown command|disabled/i.test(error.message)
      )
        throw error;
      const text = error instanceof Error ? error.message : String(error);
      return {
        check: 'permissions',
        level: 'fail',
        server,
        message: `${what} was refused: ${text.replace(/\.$/, '')}`,
        fix: /unknown command/i.test(text)
          ? 'scripting or pub/sub is disabled (a renamed command?): redis-once needs EVAL, EVALSHA, SCRIPT LOAD and (S)SUBSCRIBE'
          : `grant the user the commands and the keys and channels "${namespace}:*" (see the README's ACL rule)`,
      };
    }
  }
  return {
    check: 'permissions',
    level: 'ok',
    server,
    message: `a probe run, status, reset and subscription of "${PROBE_KEY}" in namespace "${namespace}" worked`,
  };
}

/** SUBSCRIBE (SSUBSCRIBE on a Cluster, on the channel's shard) on a connection of its own. */
async function subscribeProbe(admin: AdminClient, namespace: string): Promise<void> {
  const channel = keyNames(namespace, PROBE_KEY).done;
  const master = await admin.masterFor(channel);
  const subscriber = master.duplicate({ lazyConnect: true, enableOfflineQueue: true });
  subscriber.on('error', () => {});
  try {
    await subscriber.connect();
    await admin.call(subscriber, admin.isCluster ? 'SSUBSCRIBE' : 'SUBSCRIBE', channel);
  } finally {
    subscriber.disconnect();
  }
}

export function versionAtLeast(version: string, min: readonly number[]): boolean {
  const parts = version.split('.').map((p) => Number.parseInt(p, 10) || 0);
  for (let i = 0; i < min.length; i++) {
    if ((parts[i] ?? 0) !== min[i]) return (parts[i] ?? 0) > min[i]!;
  }
  return true;
}

function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) out[line.slice(0, colon)] = line.slice(colon + 1).trim();
  }
  return out;
}

const MARK: Record<Level, string> = { ok: 'ok  ', warn: 'warn', fail: 'FAIL', unknown: '??  ' };

export function formatFindings(findings: readonly Finding[]): string {
  const lines = findings.map((f) => {
    const fix = f.fix ? `\n        → ${f.fix}` : '';
    return `${MARK[f.level]}  ${f.check} (${f.server}): ${f.message}${fix}`;
  });
  const failed = findings.filter((f) => f.level === 'fail').length;
  const warned = findings.filter((f) => f.level === 'warn' || f.level === 'unknown').length;
  const verdict =
    failed > 0
      ? `${failed} problem(s) would break exactly-once: fix them before relying on redis-once here`
      : warned > 0
        ? `nothing breaks exactly-once; ${warned} thing(s) to look at`
        : 'nothing found that breaks exactly-once';
  return `${lines.join('\n')}\n\n${verdict}\n`;
}
