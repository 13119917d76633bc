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
import { execFileSync } from 'node:child_process';
import { Redis, type RedisOptions } from 'ioredis';
import type { StartedTestContainer } from 'testcontainers';
import { DOCKER_IMAGE, LocalRedis, startRedisContainer } from '../../scripts/redis-server.js';
import { dockerReachable, findRedisServer, isExecutable } from '../../scripts/redis-source.js';

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

class BinaryServer extends BaseServer {
  readonly source = 'binary';

  private constructor(private readonly local: LocalRedis) {
    super(local.name, local.host, local.port);
  }

  static async start(bin: string, name: string, args: string[]): Promise<BinaryServer> {
    return new BinaryServer(await LocalRedis.start({ bin, name, args }));
  }

  override get pid(): number | undefined {
    return this.local.pid;
  }

  override kill(signal?: NodeJS.Signals): Promise<void> {
    return this.local.kill(signal);
  }

  override pause(): Promise<void> {
    return this.local.pause();
  }

  override resume(): Promise<void> {
    return this.local.resume();
  }

  override restart(): Promise<void> {
    return this.local.restart();
  }

  async stop(): Promise<void> {
    // Disconnect first, so that clients do not start reconnecting to a server that is going away.
    const clientsClosed = this.closeClients();
    await this.local.stop();
    await clientsClosed;
  }
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
    return new DockerServer(name, await startRedisContainer(args, name));
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
