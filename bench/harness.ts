import { type ChildProcess, execFileSync, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import type { FromWorker, Job, JobResult, Requests } from './protocol.js';

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../', import.meta.url));
const live = new Set<ChildProcess>();

/** Kills every worker still running: at the end, on error and on Ctrl-C. */
export function killWorkers(): void {
  for (const child of live) child.kill('SIGKILL');
}

/**
 * The parent's handle on one worker process (worker.ts), forked for one job. `ready` settles once it
 * has prepared; `go(at)` starts it at `at` (now()) and settles with its result.
 */
export class Worker {
  readonly ready: Promise<unknown>;
  /** Called with the worker's clock whenever fn starts in it. */
  onFnStart: ((at: number) => void) | undefined;
  private readonly child: ChildProcess;
  private waiting: ((message: FromWorker | Error) => void) | undefined;
  private exitError: Error | undefined;

  constructor(job: Job, nodeFlags: string[] = []) {
    // fork() reuses our execArgv: the worker gets the same tsx and .lua loaders as `npm run bench`.
    this.child = fork(WORKER, [JSON.stringify(job)], {
      execArgv: [...process.execArgv, ...nodeFlags],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    live.add(this.child);
    this.child.on('message', (message: FromWorker) => {
      if (message.type === 'fn-start') this.onFnStart?.(message.at);
      else this.settle(message);
    });
    this.child.once('exit', (code, signal) => {
      live.delete(this.child);
      this.exitError = new Error(`worker exited (${signal ?? `code ${code}`})`);
      this.settle(this.exitError);
    });
    this.ready = this.expect('ready', 30_000);
    this.ready.catch(() => {}); // awaited later; a worker that dies first must not crash the bench
  }

  async go(at: number, timeoutMs: number) {
    const reply = this.expect('result', timeoutMs);
    this.child.send({ type: 'go', at });
    return (await reply) as { result: JobResult; requests: Requests; failures: string[] };
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }

  /** Disconnects; the worker exits by itself. */
  stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve();
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    if (this.child.connected) this.child.disconnect();
    const timer = setTimeout(() => this.kill(), 5_000);
    return exited.finally(() => clearTimeout(timer));
  }

  private expect(type: 'ready' | 'result', timeoutMs: number): Promise<FromWorker> {
    if (this.exitError) return Promise.reject(this.exitError);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => this.settle(new Error(`no '${type}' within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.waiting = (message) => {
        clearTimeout(timer);
        this.waiting = undefined;
        if (message instanceof Error) reject(message);
        else if (message.type === 'error') reject(new Error(message.message));
        else if (message.type !== type) reject(new Error(`expected '${type}', got '${message.type}'`));
        else resolve(message);
      };
    });
  }

  private settle(message: FromWorker | Error): void {
    this.waiting?.(message);
  }
}

export interface Environment {
  date: string;
  node: string;
  redis: string;
  /** package → installed version; `redis-once` is this repository, with its commit. */
  libraries: Record<string, string>;
  cpu: string;
  memoryGiB: number;
  os: string;
  /** Share of all cores busy in the second before the bench started: other processes (0–1). */
  busyBefore: number;
  /** Share of all cores other processes used during the run (Linux; undefined elsewhere). */
  othersDuring?: number;
  load: number[];
}

/** How busy the machine is without us: the share of all cores' time not idle over one second. */
export async function cpuBusy(): Promise<number> {
  const sample = () => {
    let idle = 0;
    let all = 0;
    for (const { times } of os.cpus()) {
      idle += times.idle;
      all += times.user + times.nice + times.sys + times.idle + times.irq;
    }
    return { idle, all };
  };
  const before = sample();
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const after = sample();
  return 1 - (after.idle - before.idle) / (after.all - before.all);
}

/**
 * CPU seconds so far (Linux): the whole machine's busy time, and ours — this process and its children
 * once they have exited (every worker and redis-server). Their difference over the run is what other
 * processes took from the two cores the measurements share.
 */
export function cpuSeconds(): { machine: number; ours: number } | undefined {
  try {
    const [user, nice, system, , , irq, softirq, steal] = readFileSync('/proc/stat', 'utf8')
      .split('\n')[0]!
      .split(/\s+/)
      .slice(1)
      .map(Number);
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const fields = stat
      .slice(stat.lastIndexOf(')') + 2)
      .split(' ')
      .map(Number); // fields 3, 4, …
    const [utime, stime, cutime, cstime] = fields.slice(11, 15) as [number, number, number, number];
    const hz = 100; // USER_HZ, the unit of both files
    return {
      machine: (user! + nice! + system! + irq! + softirq! + steal!) / hz,
      ours: (utime + stime + cutime + cstime) / hz,
    };
  } catch {
    return undefined;
  }
}

export function environment(redis: string, busyBefore: number): Environment {
  const cpus = os.cpus();
  const version = (dir: string) => {
    try {
      return (JSON.parse(readFileSync(`${ROOT}${dir}/package.json`, 'utf8')) as { version: string }).version;
    } catch {
      return 'not installed';
    }
  };
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    node: process.version,
    redis,
    libraries: {
      'redis-once': `${version('.')} (${commit()})`,
      ioredis: version('node_modules/ioredis'),
      redlock: version('node_modules/redlock'),
      redlock4: version('node_modules/redlock4'),
      'redis-semaphore': version('node_modules/redis-semaphore'),
    },
    cpu: `${(cpus[0]?.model ?? 'unknown').trim()}, ${cpus.length} cores`,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    busyBefore,
    load: os.loadavg().map((load) => Math.round(load * 100) / 100),
  };
}

/** The commit measured, and whether src/ had uncommitted changes (the bench runs the work tree). */
function commit(): string {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();
    const head = git('rev-parse', '--short', 'HEAD');
    return git('status', '--porcelain', '--', 'src') ? `${head}, src/ modified` : head;
  } catch {
    return 'no git';
  }
}
