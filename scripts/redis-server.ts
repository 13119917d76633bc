/**
 * The one launcher of throwaway Redis servers, shared by the tests (test/helpers/redis-server.ts), the
 * benchmark and the demo.
 *
 * `LocalRedis.start()` runs a `redis-server` binary (REDIS_SERVER_BIN, else PATH) on a free loopback
 * port, with no persistence and its own empty directory, and resolves once that very process answers
 * PING. It can be killed, paused, resumed, restarted on the same port (empty again) and stopped. A
 * server left running is SIGKILLed when this process exits (or gets SIGTERM, as vitest's workers do).
 * `startRedisContainer()` is the Docker fallback (testcontainers, imported only when used).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { StartedTestContainer } from 'testcontainers';
import { freePort } from './free-port.js';
import { findRedisServer } from './redis-source.js';

export const DOCKER_IMAGE = 'redis:7';
/** Nothing is persisted, so a killed server comes back empty, like a crashed cache without persistence. */
export const SERVER_ARGS = [
  '--save',
  '',
  '--appendonly',
  'no',
  '--daemonize',
  'no',
  '--protected-mode',
  'no',
  '--loglevel',
  'warning',
];
const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
const PORT_ATTEMPTS = 5;

/** The port is held by another process, so a server cannot (re)start there. */
export class PortTakenError extends Error {}

export interface LaunchOptions {
  /** The binary; default REDIS_SERVER_BIN, else `redis-server` on PATH. */
  bin?: string;
  /** Extra `redis-server` arguments, e.g. `['--maxmemory', '10mb']`. */
  args?: string[];
  /** Shows up in error messages. */
  name?: string;
}

/** One redis-server binary on a loopback port, through its restarts. */
export class LocalRedis {
  readonly host = '127.0.0.1';
  #proc: RedisProcess | undefined;

  private constructor(
    readonly name: string,
    readonly port: number,
    private readonly bin: string,
    private readonly args: string[],
  ) {}

  /** Starts a server on a free port (another one if the port is taken meanwhile) and waits until it answers. */
  static async start(options: LaunchOptions = {}): Promise<LocalRedis> {
    const bin = options.bin ?? findRedisServer();
    if (!bin) throw new Error('No redis-server binary: install redis-server, or set REDIS_SERVER_BIN');
    for (let attempt = 1; ; attempt++) {
      const server = new LocalRedis(
        options.name ?? 'redis-server',
        await freePort(),
        bin,
        options.args ?? [],
      );
      try {
        await server.#launch();
        return server;
      } catch (error) {
        if (!(error instanceof PortTakenError) || attempt === PORT_ATTEMPTS) throw error;
      }
    }
  }

  get url(): string {
    return `redis://${this.host}:${this.port}`;
  }

  /** The current process (changes on restart, unset while down). */
  get pid(): number | undefined {
    return this.#proc?.alive ? this.#proc.child.pid : undefined;
  }

  async #launch(): Promise<void> {
    const args = ['--port', String(this.port), '--bind', this.host, ...SERVER_ARGS, ...this.args];
    const proc = new RedisProcess(this.bin, args);
    this.#proc = proc;
    try {
      await waitUntilReady(this.host, this.port, {
        who: `redis-server ${this.name} on port ${this.port}`,
        expectedPid: proc.child.pid,
        failure: () => {
          if (proc.alive) return undefined;
          if (/address already in use/i.test(proc.output)) {
            return new PortTakenError(`port ${this.port} is taken by another process:\n${proc.output}`);
          }
          return new Error(`redis-server ${this.name} exited before it was ready:\n${proc.output}`);
        },
        output: () => proc.output,
      });
    } catch (error) {
      proc.child.kill('SIGKILL');
      await proc.waitForExit();
      throw error;
    }
  }

  #running(what: string): RedisProcess {
    if (!this.#proc?.alive) throw new Error(`${this.name}: ${what}() needs a running server`);
    return this.#proc;
  }

  /** Sends `signal` (one that ends the process) and resolves once the process has exited. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const proc = this.#proc;
    if (!proc?.alive) return;
    proc.child.kill(signal);
    // A stopped process acts on nothing but SIGKILL; let it run so it can handle the signal.
    if (proc.paused && signal !== 'SIGKILL') proc.child.kill('SIGCONT');
    await proc.waitForExit();
  }

  /** SIGSTOP: connections stay open but nothing is answered. Resolves once the kernel reports it stopped. */
  async pause(): Promise<void> {
    const proc = this.#running('pause');
    proc.child.kill('SIGSTOP');
    proc.paused = true;
    await waitForStopState(proc.child.pid, true);
  }

  /** SIGCONT after `pause()`. */
  async resume(): Promise<void> {
    const proc = this.#running('resume');
    proc.child.kill('SIGCONT');
    proc.paused = false;
    await waitForStopState(proc.child.pid, false);
  }

  /** Starts a fresh, empty server on the same port after `kill()`/`stop()` and waits until it answers. */
  async restart(): Promise<void> {
    if (this.#proc?.alive)
      throw new Error(`${this.name}: restart() needs the server down: kill() or stop() it first`);
    await this.#launch();
  }

  /** SIGTERM (SIGKILL past 5 s), also when paused; resolves once it has exited. Idempotent. */
  async stop(): Promise<void> {
    const proc = this.#proc;
    if (!proc?.alive) return;
    proc.child.kill('SIGTERM');
    if (proc.paused) proc.child.kill('SIGCONT');
    const force = setTimeout(() => proc.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await proc.waitForExit();
    clearTimeout(force);
  }
}

/** A `redis:7` container, answering PING. No --bind: inside it Redis must accept forwarded connections. */
export async function startRedisContainer(
  args: string[] = [],
  name = 'redis',
): Promise<StartedTestContainer> {
  const { GenericContainer } = await import('testcontainers');
  const container = await new GenericContainer(DOCKER_IMAGE)
    .withExposedPorts(6379)
    .withCommand(['redis-server', ...SERVER_ARGS, ...args])
    .start();
  try {
    await waitUntilReady(container.getHost(), container.getMappedPort(6379), {
      who: `redis container ${name}`,
    });
  } catch (error) {
    await container.stop();
    throw error;
  }
  return container;
}

/** One redis-server child process with its own empty data directory. */
class RedisProcess {
  readonly child: ChildProcess;
  /** Settles once the process has exited and its output pipes are closed. */
  readonly exited: Promise<void>;
  alive = true;
  paused = false;
  #output = '';

  constructor(bin: string, args: string[]) {
    // A fresh directory per process: nothing stray (a dump.rdb in the cwd) can be loaded at start.
    const dir = mkdtempSync(join(tmpdir(), 'redis-once-redis-'));
    this.child = spawn(bin, [...args, '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    reapOnExit(this.child, dir);
    const keepTail = (chunk: Buffer) => {
      this.#output = (this.#output + chunk.toString()).slice(-4_000);
    };
    this.child.stdout?.on('data', keepTail);
    this.child.stderr?.on('data', keepTail);
    // A server someone forgot to stop must not keep this process alive; the exit handler kills it.
    this.#keepProcessAlive(false);
    this.exited = new Promise<void>((resolve) => {
      const done = () => {
        this.alive = false;
        survivors.delete(this.child);
        rmSync(dir, { recursive: true, force: true });
        resolve();
      };
      this.child.once('close', done);
      // Spawn failures (e.g. ENOENT) may come without 'close'.
      this.child.once('error', (error) => {
        this.#output += `\n${error.message}`;
        done();
      });
    });
  }

  get output(): string {
    return this.#output.trim() || '(no output)';
  }

  /** Resolves once the process has exited; this process stays alive meanwhile. */
  async waitForExit(): Promise<void> {
    this.#keepProcessAlive(true);
    await this.exited;
  }

  #keepProcessAlive(keep: boolean): void {
    for (const handle of [this.child, this.child.stdout, this.child.stderr] as (
      | ChildProcess
      | net.Socket
    )[]) {
      if (keep) handle.ref();
      else handle.unref();
    }
  }
}

/**
 * SIGSTOP/SIGCONT are delivered asynchronously; on Linux /proc tells when they took effect, so a caller
 * that pauses and then sends a command knows the server will not answer it. Elsewhere: best effort.
 */
async function waitForStopState(pid: number | undefined, stopped: boolean): Promise<void> {
  const statFile = `/proc/${pid}/stat`;
  if (pid === undefined || !existsSync(statFile)) return;
  const isStopped = () => {
    const stat = readFileSync(statFile, 'utf8');
    // The state letter follows the parenthesised command name, which may itself contain spaces.
    return /^[tT]$/.test(stat.charAt(stat.lastIndexOf(')') + 2));
  };
  const deadline = Date.now() + 2_000;
  while (isStopped() !== stopped) {
    if (Date.now() > deadline)
      throw new Error(
        `Timed out after 2000 ms waiting for redis-server ${pid} to ${stopped ? 'stop' : 'continue'}`,
      );
    await sleep(1);
  }
}

/** Servers still running, SIGKILLed if this process goes away without stopping them. */
const survivors = new Map<ChildProcess, string>();
let reaperInstalled = false;

function reapOnExit(child: ChildProcess, dir: string): void {
  survivors.set(child, dir);
  if (reaperInstalled) return;
  reaperInstalled = true;
  process.on('exit', killSurvivors);
  // vitest ends its worker processes with SIGTERM, which skips 'exit' handlers.
  process.once('SIGTERM', () => {
    killSurvivors();
    // Re-raise so the process still dies of SIGTERM, unless someone else handles it.
    if (process.listenerCount('SIGTERM') === 0) process.kill(process.pid, 'SIGTERM');
  });
}

function killSurvivors(): void {
  for (const [child, dir] of survivors) {
    // SIGKILL also ends a paused (SIGSTOPped) process, no SIGCONT needed.
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
  survivors.clear();
}

interface ReadyCheck {
  who: string;
  /** The server must report this pid, so we never mistake someone else's Redis on that port for ours. */
  expectedPid?: number | undefined;
  /** An error if starting has failed for good (e.g. the process exited). */
  failure?: () => Error | undefined;
  output?: () => string;
}

/** Redis logs nothing at loglevel warning when ready, so probe until it answers, bounded. */
export async function waitUntilReady(host: string, port: number, check: ReadyCheck): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (let backoff = 5; ; backoff = Math.min(backoff * 2, 100)) {
    const reply = await probe(host, port);
    const failure = check.failure?.();
    if (failure) throw failure;
    if (reply.answered) {
      const ours =
        check.expectedPid === undefined || reply.pid === undefined || reply.pid === check.expectedPid;
      if (ours) return;
      throw new PortTakenError(`${check.who}: another Redis (pid ${reply.pid}) answers on that port`);
    }
    if (Date.now() > deadline) {
      const output = check.output ? `\nOutput:\n${check.output()}` : '';
      throw new Error(`${check.who} did not answer PING within ${READY_TIMEOUT_MS / 1000} s${output}`);
    }
    await sleep(backoff);
  }
}

/**
 * One raw PING plus `INFO server` (for the pid), on a throwaway socket so no client library's
 * reconnect logic is involved. `pid` is unknown when the server demands AUTH (`--requirepass`).
 */
function probe(host: string, port: number): Promise<{ answered: boolean; pid?: number }> {
  return new Promise((resolve) => {
    let reply = '';
    const socket = net.connect({ host, port });
    const finish = (result: { answered: boolean; pid?: number }) => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(1_000, () => finish({ answered: false }));
    socket.on('error', () => finish({ answered: false }));
    socket.on('close', () => finish({ answered: false }));
    socket.on('connect', () => socket.write('PING\r\nINFO server\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.startsWith('-NOAUTH')) return finish({ answered: true });
      // e.g. -LOADING while the server is still starting up.
      if (reply.startsWith('-')) return finish({ answered: false });
      const pid = /process_id:(\d+)\r\n/.exec(reply)?.[1];
      if (pid) finish({ answered: reply.startsWith('+PONG'), pid: Number(pid) });
    });
  });
}
