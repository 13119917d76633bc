import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { PreviousAttempt, RunResult } from '../../src/index.js';
import type { ClientKind } from './clients.js';

export interface WorkerConfig {
  url: string;
  namespace: string;
  key: string;
  nodeId: string;
  /** Concurrent callers of `runDetailed` in this process. */
  callers: number;
  /** How long fn works. */
  fnMs: number;
  /** fn also returns as soon as its lease is lost. */
  untilAborted?: boolean;
  /** Attempt numbers whose fn throws. */
  failAttempts?: number[];
  leaseMs?: number;
  /** createOnce's maxStallMs: how long a blocked event loop keeps its lease (the standby renewer). */
  maxStallMs?: number;
  maxAttempts?: number;
  redisTimeoutMs?: number;
  doneTtlMs?: number;
  /** The client the worker passes (test/helpers/clients.ts); a URL by default. */
  client?: ClientKind;
  /** fn's last step: a write to this ledger (test/helpers/ledger.ts) with its fencing token. */
  ledgerUrl?: string;
  /** fn waits, after its work, until the test calls `release()` (to put a fault before its end). */
  hold?: boolean;
  /** Lead a key of its own before `ready`: connections made and scripts loaded, as a deployed process. */
  warmUp?: boolean;
  /** fn first blocks the event loop (a synchronous, CPU-bound step) for this long. */
  blockMs?: number;
}

export type WorkerEvent =
  | { type: 'ready'; nodeId: string }
  | {
      type: 'fn-start';
      nodeId: string;
      fencingToken: number;
      attempt: number;
      previous: PreviousAttempt | null;
    }
  | { type: 'fn-aborted'; nodeId: string; reason: string }
  | { type: 'fn-holding'; nodeId: string; fencingToken: number }
  | { type: 'ledger'; nodeId: string; fencingToken: number; accepted: boolean }
  | { type: 'fn-end'; nodeId: string; fencingToken: number }
  | { type: 'result'; nodeId: string; result: RunResult<{ by: string; token: number }> }
  | { type: 'error'; nodeId: string; name: string; message: string }
  | { type: 'finished'; nodeId: string };

const main = fileURLToPath(new URL('./worker-main.ts', import.meta.url));
const registerLua = fileURLToPath(new URL('../../scripts/register-lua.mjs', import.meta.url));

/** A child process running worker-main.ts; every event it sends is kept in `events`, in order. */
export class Worker {
  readonly events: WorkerEvent[] = [];
  /** When each event arrived here (performance.now() of the test process), by index. */
  readonly arrivedAt: number[] = [];
  readonly exited: Promise<number | null>;
  private readonly waiters = new Set<() => void>();

  private constructor(
    readonly config: WorkerConfig,
    readonly child: ChildProcess,
  ) {
    child.on('message', (event: WorkerEvent) => {
      this.events.push(event);
      this.arrivedAt.push(performance.now());
      for (const wake of [...this.waiters]) wake();
    });
    this.exited = once(child, 'exit').then(([code]) => code as number | null);
  }

  static async start(config: WorkerConfig): Promise<Worker> {
    const child = fork(main, [JSON.stringify(config)], {
      execArgv: ['--import', 'tsx', '--import', registerLua],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const worker = new Worker(config, child);
    live.add(worker);
    worker.exited.finally(() => live.delete(worker));
    await worker.next((e) => e.type === 'ready', 20_000);
    return worker;
  }

  go(): void {
    this.child.send({ type: 'go' });
  }

  /** Lets a held fn (config.hold) finish. */
  release(): void {
    this.child.send({ type: 'release' });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Resolves with the first event (already received or to come) matching `match`, within `timeoutMs`. */
  next<E extends WorkerEvent>(match: (e: WorkerEvent) => e is E, timeoutMs?: number): Promise<E>;
  next(match: (e: WorkerEvent) => boolean, timeoutMs?: number): Promise<WorkerEvent>;
  next(match: (e: WorkerEvent) => boolean, timeoutMs = 15_000): Promise<WorkerEvent> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.events.find(match);
        if (!found) return false;
        cleanup();
        resolve(found);
        return true;
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new Error(
            `worker ${this.config.nodeId}: no matching event within ${timeoutMs} ms; saw ${JSON.stringify(this.events)}`,
          ),
        );
      }, timeoutMs);
      const onExit = () => {
        if (check()) return;
        cleanup();
        reject(new Error(`worker ${this.config.nodeId} exited; saw ${JSON.stringify(this.events)}`));
      };
      const cleanup = () => {
        clearTimeout(timer);
        this.waiters.delete(wake);
        this.child.off('exit', onExit);
      };
      const wake = () => void check();
      if (check()) return;
      this.waiters.add(wake);
      this.child.on('exit', onExit);
    });
  }

  /** Resolves once every caller has answered (a value or an error). */
  async finished(timeoutMs?: number): Promise<void> {
    await this.next((e) => e.type === 'finished', timeoutMs);
  }

  /** When the last of its callers settled (a result or an error arrived), or undefined if none has. */
  lastSettledAt(): number | undefined {
    let at: number | undefined;
    this.events.forEach((e, i) => {
      if (e.type === 'result' || e.type === 'error') at = this.arrivedAt[i];
    });
    return at;
  }

  results(): Array<RunResult<{ by: string; token: number }>> {
    return this.events.flatMap((e) => (e.type === 'result' ? [e.result] : []));
  }

  errors(): Array<{ name: string; message: string }> {
    return this.events.flatMap((e) => (e.type === 'error' ? [{ name: e.name, message: e.message }] : []));
  }

  fnStarts(): Array<Extract<WorkerEvent, { type: 'fn-start' }>> {
    return this.events.filter((e): e is Extract<WorkerEvent, { type: 'fn-start' }> => e.type === 'fn-start');
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGCONT');
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

const live = new Set<Worker>();

/** Kills every worker still running: call in afterEach/afterAll. */
export async function killAllWorkers(): Promise<void> {
  await Promise.all([...live].map((worker) => worker.kill()));
}
