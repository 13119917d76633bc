/**
 * Real Redis servers for tests, no mocks.
 *
 * Where Redis comes from, in order:
 *  1. `REDIS_URL` set: that external server is used as is (`source: 'external'`); it cannot be
 *     killed or paused, so fault tests skip themselves via `canInjectFaults`.
 *  2. A `redis-server` binary (`REDIS_SERVER_BIN`, else `PATH`): one throwaway process per
 *     `startRedis()` on a free loopback port, with every fault-injection method available.
 *  3. Docker reachable: a `redis:7` container through testcontainers. `pause`, `resume` and `kill`
 *     are best-effort through the Docker API; `restart` throws 'not supported with docker' because
 *     the mapped host port would change.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis, type RedisOptions } from 'ioredis';
import type { StartedTestContainer } from 'testcontainers';
import { freePort } from '../../scripts/free-port.js';
import { dockerReachable, findRedisServer, isExecutable } from '../../scripts/redis-source.js';
import { waitFor } from './gate.js';

export type RedisSource = 'binary' | 'docker' | 'external';

export interface StartRedisOptions {
  /** Extra `redis-server` arguments, e.g. `['--maxmemory', '10mb']`. Not possible with REDIS_URL. */
  args?: string[];
  /** Shows up in error messages. */
  name?: string;
}

export interface RedisServer {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly url: string;
  readonly source: RedisSource;
  /** The current redis-server process (binary source only; changes on restart, unset while down). */
  readonly pid: number | undefined;
  /** Sends `signal` (one that ends the process) and resolves once the process has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** SIGSTOP: connections stay open but nothing is answered. Resolves once the kernel reports it stopped. */
  pause(): Promise<void>;
  /** SIGCONT after `pause()`. */
  resume(): Promise<void>;
  /** Starts a fresh, empty server on the same port after `kill()`/`stop()` and waits until it answers. */
  restart(): Promise<void>;
  /** Disconnects this server's clients and shuts it down gracefully. Idempotent, and fine after `kill()`. */
  stop(): Promise<void>;
  /** A new ioredis client for this server; `stop()` disconnects it. */
  client(opts?: RedisOptions): Redis;
}

const LOG_PREFIX = '[redis-once tests]';
const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
const PORT_ATTEMPTS = 5;
const DOCKER_IMAGE = 'redis:7';
/** Nothing is persisted, so a killed server comes back empty, like a crashed cache without persistence. */
const SERVER_ARGS = [
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
const HOW_TO_GET_REDIS =
  'install a redis-server binary (`apt-get install redis-server`, or set REDIS_SERVER_BIN), ' +
  'or set REDIS_URL to a server you own (fault tests are then skipped), ' +
  'or install and start Docker so testcontainers can run redis:7';
/** Set once the line saying which Redis is used has been printed; inherited by vitest's workers. */
const ANNOUNCED_ENV = 'REDIS_ONCE_TESTS_ANNOUNCED';

function redisUrlFromEnv(): string | undefined {
  return process.env.REDIS_URL || undefined;
}

/** True when tests may kill, pause and restart servers: a local binary is used, not REDIS_URL or Docker. */
export const canInjectFaults: boolean = (() => {
  const bin = findRedisServer();
  return !redisUrlFromEnv() && bin !== undefined && isExecutable(bin);
})();

type Resolved =
  | { source: 'external'; url: string }
  | { source: 'binary'; bin: string; version: string }
  | { source: 'docker' }
  | { source: 'none' };

let resolved: Promise<Resolved> | undefined;

/** Decided once per process: every server in a run comes from the same place. */
function resolveSource(): Promise<Resolved> {
  resolved ??= detectSource();
  return resolved;
}

async function detectSource(): Promise<Resolved> {
  const url = redisUrlFromEnv();
  if (url) return { source: 'external', url };
  const bin = findRedisServer();
  if (bin) return { source: 'binary', bin, version: binaryVersion(bin) };
  if (await dockerReachable()) return { source: 'docker' };
  return { source: 'none' };
}

function binaryVersion(bin: string): string {
  try {
    const out = execFileSync(bin, ['--version'], { encoding: 'utf8', timeout: 5_000 });
    return /v=(\S+)/.exec(out)?.[1] ?? out.trim();
  } catch (error) {
    throw new Error(`\`${bin} --version\` failed (check REDIS_SERVER_BIN / PATH): ${errorMessage(error)}`);
  }
}

/** Hides credentials so the URL can be logged. */
export function maskUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    // `redis://secret@host` is a password-only URL for some clients.
    else if (parsed.username) parsed.username = '***';
    return parsed.toString();
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//***@');
  }
}

/** The one line that says which Redis the tests use. */
export async function describeRedisSource(): Promise<string> {
  const r = await resolveSource();
  switch (r.source) {
    case 'binary':
      return `${LOG_PREFIX} using redis-server ${r.version} from ${r.bin} (one throwaway server per test file, ports chosen freely)`;
    case 'docker':
      return `${LOG_PREFIX} using Docker (testcontainers, ${DOCKER_IMAGE}): no redis-server binary found; fault tests skipped`;
    case 'external':
      return `${LOG_PREFIX} using REDIS_URL=${maskUrl(r.url)} (external; fault tests skipped)`;
    case 'none':
      return `${LOG_PREFIX} no Redis available, tests that need one will fail: ${HOW_TO_GET_REDIS}`;
  }
}

/** Prints the source line once per run: global setup prints it and marks the env its workers inherit. */
export async function announceRedisSource(): Promise<void> {
  if (process.env[ANNOUNCED_ENV]) return;
  process.env[ANNOUNCED_ENV] = '1';
  console.error(await describeRedisSource());
}

let serverCount = 0;

export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisServer> {
  const name = opts.name ?? `redis-${++serverCount}`;
  const args = opts.args ?? [];
  const r = await resolveSource();
  if (r.source === 'none') throw new Error(`No Redis available for tests: ${HOW_TO_GET_REDIS}.`);
  await announceRedisSource();
  switch (r.source) {
    case 'external':
      if (args.length > 0) {
        throw new Error(`${name}: startRedis({ args }) needs a redis-server binary or Docker, not REDIS_URL`);
      }
      return new ExternalServer(name, r.url);
    case 'binary':
      return BinaryServer.start(r.bin, name, args);
    case 'docker':
      return DockerServer.start(name, args);
  }
}

/** Client tracking, plus fault methods that refuse; each source overrides what it can do. */
abstract class BaseServer implements RedisServer {
  abstract readonly source: RedisSource;
  readonly #clients = new Set<Redis>();

  constructor(
    readonly name: string,
    readonly host: string,
    readonly port: number,
  ) {}

  get url(): string {
    return `redis://${this.host}:${this.port}`;
  }

  get pid(): number | undefined {
    return undefined;
  }

  client(opts: RedisOptions = {}): Redis {
    const client = new Redis(this.url, opts);
    // Fault tests break connections on purpose. Callers see that as rejected commands; without a
    // listener ioredis would also print every reconnect error as "Unhandled error event".
    client.on('error', () => {});
    this.#clients.add(client);
    return client;
  }

  /** Disconnects every client now; the returned promise settles once their sockets are closed. */
  protected closeClients(): Promise<void> {
    const closing = [...this.#clients].map((client) => {
      client.disconnect();
      if (client.status === 'reconnecting') {
        // ioredis 6.0.0 leaves a client disconnected between reconnect attempts 'reconnecting' forever,
        // its queued commands never settling (redis/ioredis#2169). A connect() cancelled at once ends
        // it properly: queued commands reject with "Connection is closed." and 'end' is emitted.
        client.connect().catch(() => {});
        client.disconnect();
      }
      // Not events.once(): that would reject on the 'error' events a closing client may still emit.
      return client.status === 'end' ? undefined : new Promise((resolve) => client.once('end', resolve));
    });
    this.#clients.clear();
    return Promise.all(closing).then(() => undefined);
  }

  protected unsupported(what: string): Error {
    return new Error(`${this.name}: ${what}() is not supported with source '${this.source}'`);
  }

  async kill(_signal?: NodeJS.Signals): Promise<void> {
    throw this.unsupported('kill');
  }

  async pause(): Promise<void> {
    throw this.unsupported('pause');
  }

  async resume(): Promise<void> {
    throw this.unsupported('resume');
  }

  async restart(): Promise<void> {
    throw this.unsupported('restart');
  }

  abstract stop(): Promise<void>;
}

class ExternalServer extends BaseServer {
  readonly source = 'external';

  constructor(
    name: string,
    private readonly externalUrl: string,
  ) {
    const parsed = new URL(externalUrl);
    super(name, parsed.hostname, Number(parsed.port || 6379));
  }

  // Keeps credentials, database and TLS scheme for clients.
  override get url(): string {
    return this.externalUrl;
  }

  protected override unsupported(what: string): Error {
    return new Error(
      `${this.name}: ${what}(): fault injection needs a redis-server binary; REDIS_URL points at an external server`,
    );
  }

  async stop(): Promise<void> {
    await this.closeClients();
  }
}

/** The port is held by another process, so a server cannot (re)start there. */
class PortTakenError extends Error {}

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
    const dir = mkdtempSync(join(tmpdir(), 'redis-once-test-'));
    this.child = spawn(bin, [...args, '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    reapOnExit(this.child, dir);
    const keepTail = (chunk: Buffer) => {
      this.#output = (this.#output + chunk.toString()).slice(-4_000);
    };
    this.child.stdout?.on('data', keepTail);
    this.child.stderr?.on('data', keepTail);
    // A server someone forgot to stop must not keep the test process alive; the exit handler kills it.
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

  /** Resolves once the process has exited; the test process stays alive meanwhile. */
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

class BinaryServer extends BaseServer {
  readonly source = 'binary';
  #proc: RedisProcess | undefined;

  private constructor(
    name: string,
    port: number,
    private readonly bin: string,
    private readonly args: string[],
  ) {
    super(name, '127.0.0.1', port);
  }

  static async start(bin: string, name: string, args: string[]): Promise<BinaryServer> {
    for (let attempt = 1; ; attempt++) {
      const server = new BinaryServer(name, await freePort(), bin, args);
      try {
        await server.#launch();
        return server;
      } catch (error) {
        if (!(error instanceof PortTakenError) || attempt === PORT_ATTEMPTS) throw error;
      }
    }
  }

  override get pid(): number | undefined {
    return this.#proc?.alive ? this.#proc.child.pid : undefined;
  }

  async #launch(): Promise<void> {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', ...SERVER_ARGS, ...this.args];
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

  override async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const proc = this.#proc;
    if (!proc?.alive) return;
    proc.child.kill(signal);
    // A stopped process acts on nothing but SIGKILL; let it run so it can handle the signal.
    if (proc.paused && signal !== 'SIGKILL') proc.child.kill('SIGCONT');
    await proc.waitForExit();
  }

  override async pause(): Promise<void> {
    const proc = this.#running('pause');
    proc.child.kill('SIGSTOP');
    proc.paused = true;
    await waitForStopState(proc.child.pid, true);
  }

  override async resume(): Promise<void> {
    const proc = this.#running('resume');
    proc.child.kill('SIGCONT');
    proc.paused = false;
    await waitForStopState(proc.child.pid, false);
  }

  override async restart(): Promise<void> {
    if (this.#proc?.alive)
      throw new Error(`${this.name}: restart() needs the server down: kill() or stop() it first`);
    await this.#launch();
  }

  async stop(): Promise<void> {
    // Disconnect first, so that clients do not start reconnecting to a server that is going away.
    const clientsClosed = this.closeClients();
    const proc = this.#proc;
    if (proc?.alive) {
      proc.child.kill('SIGTERM');
      if (proc.paused) proc.child.kill('SIGCONT');
      const force = setTimeout(() => proc.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await proc.waitForExit();
      clearTimeout(force);
    }
    await clientsClosed;
  }
}

/**
 * SIGSTOP/SIGCONT are delivered asynchronously; on Linux /proc tells when they took effect, so a test
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
  await waitFor(() => isStopped() === stopped, {
    timeoutMs: 2_000,
    intervalMs: 1,
    what: `redis-server ${pid} to ${stopped ? 'stop' : 'continue'}`,
  });
}

/** Servers still running, SIGKILLed if the test process goes away without stopping them. */
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
async function waitUntilReady(host: string, port: number, check: ReadyCheck): Promise<void> {
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

class DockerServer extends BaseServer {
  readonly source = 'docker';
  #paused = false;
  #killed = false;

  private constructor(
    name: string,
    private readonly container: StartedTestContainer,
  ) {
    super(name, container.getHost(), container.getMappedPort(6379));
  }

  static async start(name: string, args: string[]): Promise<DockerServer> {
    const { GenericContainer } = await import('testcontainers');
    // No --bind: inside the container Redis must accept the forwarded connections.
    const container = await new GenericContainer(DOCKER_IMAGE)
      .withExposedPorts(6379)
      .withCommand(['redis-server', ...SERVER_ARGS, ...args])
      .start();
    const server = new DockerServer(name, container);
    try {
      await waitUntilReady(server.host, server.port, { who: `redis container ${name}` });
    } catch (error) {
      await container.stop();
      throw error;
    }
    return server;
  }

  async #dockerContainer() {
    const { getContainerRuntimeClient } = await import('testcontainers');
    return (await getContainerRuntimeClient()).container.getById(this.container.getId());
  }

  override async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    // Docker refuses to kill an exited container; the binary source treats that as done, so do we.
    if (this.#killed) return;
    const docker = await this.#dockerContainer();
    if (this.#paused) await this.resume();
    await docker.kill({ signal });
    await docker.wait();
    this.#killed = true;
  }

  override async pause(): Promise<void> {
    await (await this.#dockerContainer()).pause();
    this.#paused = true;
  }

  override async resume(): Promise<void> {
    await (await this.#dockerContainer()).unpause();
    this.#paused = false;
  }

  override async restart(): Promise<void> {
    throw new Error(`${this.name}: restart() is not supported with docker (the mapped port would change)`);
  }

  async stop(): Promise<void> {
    const clientsClosed = this.closeClients();
    if (this.#paused) await this.resume();
    // testcontainers makes this idempotent and treats an already-exited container as stopped.
    await this.container.stop();
    await clientsClosed;
  }
}

/** `INFO commandstats` as command name (lower case, e.g. 'evalsha', 'client|setname') → calls. */
export async function commandStats(client: Redis): Promise<Map<string, number>> {
  const stats = new Map<string, number>();
  for (const match of (await client.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    stats.set(match[1]!.toLowerCase(), Number(match[2]));
  }
  return stats;
}

/**
 * Calls made between two `commandStats` snapshots of one server. The INFO that took `before` is
 * counted by the server and left out here, so a quiet interval diffs to an empty map.
 */
export function diffStats(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
  const diff = new Map<string, number>();
  for (const [name, calls] of after) {
    const delta = calls - (before.get(name) ?? 0) - (name === 'info' ? 1 : 0);
    if (delta > 0) diff.set(name, delta);
  }
  return diff;
}

/** Sum of a diff; `exclude: ['client']` also drops subcommands such as 'client|setinfo'. */
export function totalCommands(
  diff: Map<string, number>,
  { exclude = [] }: { exclude?: string[] } = {},
): number {
  const excluded = new Set(exclude.map((name) => name.toLowerCase()));
  let total = 0;
  for (const [name, calls] of diff) {
    if (!excluded.has(name) && !excluded.has(name.split('|')[0]!)) total += calls;
  }
  return total;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
