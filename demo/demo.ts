/**
 * `npm run demo [-- --crash]`: six "pods" start at once and all call `once.run('migrate:v42', …)`;
 * one runs the migration, the others wait for it, and a seventh pod started afterwards gets the
 * cached value. With --crash, the leader is SIGKILLed mid-migration and a follower takes over once
 * its lease (2 s) expires, resuming from the steps the dead leader recorded.
 *
 * Redis: REDIS_URL, else a throwaway redis-server, else a Docker container (see redis.ts).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { type DemoRedis, NoRedisError, startDemoRedis } from './redis.js';
import type { PodConfig, PodMessage } from './shared.js';

const PODS = 6;
const KEY = 'migrate:v42';
const POD_MAIN = fileURLToPath(new URL('./pod.ts', import.meta.url));
const REGISTER_LUA = fileURLToPath(new URL('../scripts/register-lua.mjs', import.meta.url));

interface Row {
  node: string;
  role: string;
  waited: string;
  token: string;
  attempt: string;
}

class Pod {
  readonly messages: PodMessage[] = [];
  readonly exited: Promise<unknown>;
  readonly child: ChildProcess;
  private readonly listeners = new Set<() => void>();

  constructor(readonly config: PodConfig) {
    this.child = fork(POD_MAIN, [JSON.stringify(config)], {
      execArgv: ['--import', 'tsx', '--import', REGISTER_LUA],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child.on('message', (message: PodMessage) => {
      this.messages.push(message);
      for (const listener of [...this.listeners]) listener();
    });
    this.exited = once(this.child, 'exit');
    void this.exited.then(() => {
      for (const listener of [...this.listeners]) listener();
    });
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The first message matching `match`, or undefined if the pod exits without sending one. */
  next<M extends PodMessage>(match: (m: PodMessage) => m is M): Promise<M | undefined> {
    return new Promise((resolve) => {
      const check = () => {
        const found = this.messages.find(match);
        if (found || !this.alive) {
          this.listeners.delete(check);
          resolve(found as M | undefined);
        }
      };
      this.listeners.add(check);
      check();
    });
  }

  kill(): void {
    if (this.alive) this.child.kill('SIGKILL');
  }
}

const isResult = (m: PodMessage): m is Extract<PodMessage, { type: 'result' | 'error' }> =>
  m.type === 'result' || m.type === 'error';

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { crash: { type: 'boolean', default: false } } });
  const crash = values.crash === true;
  const t0 = performance.now();
  const pods: Pod[] = [];
  let redis: DemoRedis | undefined;
  let admin: Redis | undefined;
  const dbDir = mkdtempSync(join(tmpdir(), 'redis-once-demo-db-'));
  const cleanUp = async () => {
    for (const pod of pods) pod.kill();
    await Promise.all(pods.map((pod) => pod.exited));
    admin?.disconnect();
    await redis?.stop();
    rmSync(dbDir, { recursive: true, force: true });
  };
  // Ctrl-C: no child outlives the demo.
  const onSignal = () => {
    void cleanUp().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    try {
      redis = await startDemoRedis();
    } catch (error) {
      if (error instanceof NoRedisError) {
        console.error(error.message);
        return 1;
      }
      throw error;
    }
    const leaseMs = crash ? 2_000 : 10_000;
    console.log(
      `redis-once demo${crash ? ' --crash' : ''}: ${PODS} pods call once.run("${KEY}") at the same time ` +
        `(Redis: ${redis.description}; lease ${leaseMs / 1000} s)\n`,
    );
    admin = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    admin.on('error', () => {});
    await admin.connect();
    const namespace = `demo-${randomUUID().slice(0, 8)}`;
    const config = (nodeId: string): PodConfig => ({
      url: redis!.url,
      namespace,
      key: KEY,
      nodeId,
      leaseMs,
      dbFile: join(dbDir, 'db.json'),
      stepMs: 450,
    });

    for (let i = 1; i <= PODS; i++) pods.push(new Pod(config(`pod-${i}`)));
    await Promise.all(pods.map((pod) => pod.next((m): m is PodMessage => m.type === 'ready')));
    const before = await commandStats(admin);
    for (const pod of pods) pod.child.send('go');

    const crashed = new Set<string>();
    if (crash) {
      // SIGKILL the leader once it has applied two steps: no goodbye, no lease release.
      const leader = await Promise.race(
        pods.map((pod) =>
          pod
            .next((m): m is Extract<PodMessage, { type: 'step' }> => m.type === 'step' && m.step === 2)
            .then((m) => (m ? pod : new Promise<never>(() => {}))),
        ),
      );
      leader.kill();
      crashed.add(leader.config.nodeId);
      console.log(
        `\n  💥 demo: SIGKILL ${leader.config.nodeId} (the leader) after step 2 of 4; ` +
          `the others take over once its lease expires (≤ ${leaseMs / 1000} s)\n`,
      );
    }
    const results = await Promise.all(pods.map((pod) => pod.next(isResult)));
    await Promise.all(pods.map((pod) => pod.exited));

    console.log('\n  (a 7th pod starts after the migration is done)');
    const late = new Pod(config('pod-7'));
    pods.push(late);
    await late.next((m): m is PodMessage => m.type === 'ready');
    late.child.send('go');
    results.push(await late.next(isResult));
    await Promise.all(pods.map((pod) => pod.exited));
    const used = diff(before, await commandStats(admin));

    const rows: Row[] = pods.map((pod, i) => {
      const result = results[i];
      if (crashed.has(pod.config.nodeId)) {
        const led = pod.messages.find((m) => m.type === 'leading');
        return {
          node: pod.config.nodeId,
          role: 'crashed',
          waited: '-',
          token: led ? String(led.fencingToken) : '-',
          attempt: led ? String(led.attempt) : '-',
        };
      }
      if (!result || result.type === 'error') {
        return {
          node: pod.config.nodeId,
          role: `error: ${result?.name ?? 'exited'}`,
          waited: '-',
          token: '-',
          attempt: '-',
        };
      }
      return {
        node: pod.config.nodeId,
        role: result.role,
        waited: `${(result.waitedMs / 1000).toFixed(2)} s`,
        token: String(result.fencingToken),
        attempt: String(result.attempt),
      };
    });
    console.log(`\n${table(rows)}`);
    console.log(`\n${describeCommands(used, pods.length)}`);
    const leaders = rows.filter((row) => row.role === 'leader').length;
    const ok =
      leaders === 1 && rows.every((row) => ['leader', 'follower', 'cached', 'crashed'].includes(row.role));
    console.log(
      ok
        ? `The migration ran exactly once${crash ? ' to completion, after a takeover' : ''}; ` +
            `every pod got its result. ${((performance.now() - t0) / 1000).toFixed(1)} s in all.`
        : `Something went wrong: ${leaders} leader(s).`,
    );
    return ok ? 0 : 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cleanUp();
  }
}

/** INFO commandstats: command → calls. */
async function commandStats(client: Redis): Promise<Map<string, number>> {
  const stats = new Map<string, number>();
  for (const match of (await client.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    stats.set(match[1]!, Number(match[2]));
  }
  return stats;
}

/** Calls between two snapshots, leaving out the INFO that took the first one. */
function diff(
  before: Map<string, number>,
  after: Map<string, number>,
): { total: number; byCommand: Map<string, number> } {
  const byCommand = new Map<string, number>();
  let total = 0;
  for (const [name, calls] of after) {
    const delta = calls - (before.get(name) ?? 0) - (name === 'info' ? 1 : 0);
    if (delta > 0) {
      byCommand.set(name, delta);
      total += delta;
    }
  }
  return { total, byCommand };
}

const CONNECTION = new Set(['hello', 'info', 'select', 'quit', 'ping', 'auth', 'client']);
const PUBSUB = new Set(['subscribe', 'unsubscribe', 'publish', 'ssubscribe', 'sunsubscribe', 'spublish']);
const SCRIPTS = new Set(['eval', 'evalsha', 'script']);

/** The commandstats delta, grouped; commands run inside Lua scripts are counted by Redis too. */
function describeCommands(used: { total: number; byCommand: Map<string, number> }, pods: number): string {
  const groups = { scripts: 0, pubsub: 0, connection: 0, other: 0 };
  for (const [name, calls] of used.byCommand) {
    const base = name.split('|')[0]!;
    if (SCRIPTS.has(base)) groups.scripts += calls;
    else if (PUBSUB.has(base)) groups.pubsub += calls;
    else if (CONNECTION.has(base)) groups.connection += calls;
    else groups.other += calls;
  }
  return (
    `Redis commands used by all ${pods} pods (INFO commandstats delta): ${used.total} = ` +
    `${groups.scripts} script calls (EVALSHA) + ${groups.other} commands they ran inside Redis and other reads ` +
    `+ ${groups.pubsub} pub/sub + ${groups.connection} connection set-up and tear-down (HELLO, INFO, QUIT…)`
  );
}

function table(rows: Row[]): string {
  const header: Row = {
    node: 'node',
    role: 'role',
    waited: 'waited',
    token: 'fencing token',
    attempt: 'attempt',
  };
  const columns = Object.keys(header) as Array<keyof Row>;
  const widths = columns.map((column) => Math.max(...[header, ...rows].map((row) => row[column].length)));
  const line = (row: Row) =>
    `  ${columns.map((column, i) => row[column].padEnd(widths[i]!)).join('   ')}`.trimEnd();
  const rule = `  ${widths.map((width) => '─'.repeat(width)).join('   ')}`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

process.exitCode = await main();
