import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../scripts/free-port.js';
import { track } from './children.js';
import { sleep } from './clock.js';

/** Calls per command name, as INFO commandstats counts them (commands run by Lua scripts included). */
export type CommandCounts = Record<string, number>;

/**
 * The bench's own redis-server: started on a free loopback port with no persistence (nothing to
 * write, nothing stray to load), stopped at the end, and killed with the bench if anything goes wrong.
 */
export class RedisServer {
  private constructor(
    readonly port: number,
    readonly version: string,
    /** The harness's own connection: flushes, snapshots, counters. Never a peer's. */
    readonly admin: Redis,
    private readonly stopProcess: () => Promise<void>,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<RedisServer> {
    // Another process may take the free port between our probe and redis-server's bind: retry.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const dir = mkdtempSync(join(tmpdir(), 'redis-once-bench-'));
      const child = spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      track(child, dir);
      guard(child.pid, dir);
      let output = '';
      child.stdout?.on('data', (chunk: Buffer) => {
        output = (output + chunk.toString()).slice(-4000);
      });
      child.stderr?.on('data', (chunk: Buffer) => {
        output = (output + chunk.toString()).slice(-4000);
      });
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      const admin = await connectWhenUp(port, exited);
      if (!admin) {
        if (attempt >= 5) throw new Error(`redis-server did not start:\n${output}`);
        continue;
      }
      const info = await admin.info('server');
      const version = /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown';
      const stop = async () => {
        admin.disconnect();
        child.kill('SIGKILL');
        await exited;
      };
      return new RedisServer(port, version, admin, stop);
    }
  }

  async flush(): Promise<void> {
    await this.admin.flushall();
  }

  /**
   * Every command's call count so far. The INFO that takes a snapshot is itself counted by the next
   * snapshot: `delta` subtracts it.
   */
  async commandstats(): Promise<CommandCounts> {
    const text = await this.admin.info('commandstats');
    const counts: CommandCounts = {};
    for (const match of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
      counts[match[1]!] = Number(match[2]);
    }
    return counts;
  }

  stop(): Promise<void> {
    return this.stopProcess();
  }
}

/**
 * What happened between two snapshots, minus the harness's own commands: the INFO of the first
 * snapshot, and `harness` (the counters fn keeps, say).
 */
export function delta(
  before: CommandCounts,
  after: CommandCounts,
  harness: CommandCounts = {},
): CommandCounts {
  const own: CommandCounts = { ...harness, info: (harness.info ?? 0) + 1 };
  const out: CommandCounts = {};
  for (const [name, calls] of Object.entries(after)) {
    const n = calls - (before[name] ?? 0) - (own[name] ?? 0);
    if (n !== 0) out[name] = n;
  }
  return out;
}

export function total(counts: CommandCounts): number {
  let sum = 0;
  for (const calls of Object.values(counts)) sum += calls;
  return sum;
}

/**
 * Workers exit when the bench's IPC channel closes, but redis-server cannot know the bench died if it
 * is killed with SIGKILL (no handler runs). A tiny watchdog shell blocks reading a pipe from us; the
 * pipe closes when we die, however we die, and the watchdog then kills the server and removes its
 * directory. On a normal exit it is itself killed with the other children.
 */
function guard(pid: number | undefined, dir: string): void {
  if (pid === undefined || process.platform === 'win32') return;
  const watchdog = spawn('sh', ['-c', 'read _; kill -9 "$0" 2>/dev/null; rm -rf "$1"', String(pid), dir], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  watchdog.on('error', () => {}); // no sh: the handlers in children.ts still cover every other way out
  track(watchdog);
}

/** An admin connection once the server answers, or undefined if it exited first (port taken). */
async function connectWhenUp(port: number, exited: Promise<void>): Promise<Redis | undefined> {
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const deadline = Date.now() + 10_000;
  while (!gone && Date.now() < deadline) {
    const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.ping();
      return client;
    } catch {
      client.disconnect();
      await sleep(25);
    }
  }
  return undefined;
}
