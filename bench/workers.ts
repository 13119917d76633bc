import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { track } from './children.js';
import type { Command, Job, JobResult, Message, RequestCounts } from './protocol.js';

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));

type Expected = Exclude<Message['type'], 'fn-start' | 'error'>;

/** The parent's handle on one worker process (worker.ts): each step resolves with the worker's reply. */
export class WorkerProcess {
  /** Called with the worker's clock (now()) whenever fn starts in it. */
  onFnStart: ((at: number) => void) | undefined;
  private readonly child: ChildProcess;
  private waiting:
    | { type: Expected; resolve: (message: Message) => void; reject: (e: Error) => void }
    | undefined;
  private exitError: Error | undefined;
  readonly up: Promise<void>;

  constructor(redisUrl: string) {
    // fork() reuses our execArgv: the worker gets the same tsx and .lua loaders as `npm run bench`.
    this.child = fork(WORKER, [redisUrl], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    track(this.child);
    this.child.on('message', (message: Message) => this.receive(message));
    this.child.once('exit', (code, signal) => {
      this.exitError = new Error(`worker ${this.child.pid} exited (${signal ?? `code ${code}`})`);
      this.waiting?.reject(this.exitError);
      this.waiting = undefined;
    });
    this.up = this.expect('up', 30_000).then(() => undefined);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get alive(): boolean {
    return this.exitError === undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Creates the job's peer; resolves with the requests that took (connecting, and any set-up). */
  async prepare(job: Job, timeoutMs = 15_000): Promise<RequestCounts> {
    const reply = await this.request({ type: 'prepare', job }, 'ready', timeoutMs);
    return (reply as Extract<Message, { type: 'ready' }>).requests;
  }

  async go(timeoutMs: number): Promise<JobResult> {
    const reply = await this.request({ type: 'go' }, 'result', timeoutMs);
    return (reply as Extract<Message, { type: 'result' }>).result;
  }

  /** Closes the peer; resolves with the requests the worker sent since `go`. */
  async release(timeoutMs = 10_000): Promise<RequestCounts> {
    const reply = await this.request({ type: 'release' }, 'released', timeoutMs);
    return (reply as Extract<Message, { type: 'released' }>).requests;
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }

  /**
   * Closes the IPC channel, on which the worker exits by itself (and so writes a --cpu-prof profile
   * when profiled); killed if it has not exited within `graceMs`.
   */
  async stop(graceMs = 2_000): Promise<void> {
    if (!this.alive) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    if (this.child.connected) this.child.disconnect();
    const timer = setTimeout(() => this.kill(), graceMs);
    await exited;
    clearTimeout(timer);
  }

  private request(command: Command, type: Expected, timeoutMs: number): Promise<Message> {
    const reply = this.expect(type, timeoutMs);
    this.child.send(command);
    return reply;
  }

  private expect(type: Expected, timeoutMs: number): Promise<Message> {
    if (this.exitError) return Promise.reject(this.exitError);
    if (this.waiting) return Promise.reject(new Error(`worker ${this.pid} is busy (${this.waiting.type})`));
    return new Promise<Message>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = undefined;
        reject(new Error(`worker ${this.pid}: no '${type}' within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting = {
        type,
        resolve: (message) => {
          clearTimeout(timer);
          resolve(message);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
    });
  }

  private receive(message: Message): void {
    if (message.type === 'fn-start') {
      this.onFnStart?.(message.at);
      return;
    }
    const waiting = this.waiting;
    if (!waiting) return;
    this.waiting = undefined;
    if (message.type === 'error') waiting.reject(new Error(`worker ${this.pid}: ${message.message}`));
    else if (message.type === waiting.type) waiting.resolve(message);
    else waiting.reject(new Error(`worker ${this.pid}: expected '${waiting.type}', got '${message.type}'`));
  }
}

/**
 * Long-lived workers, reused from job to job: starting a Node process with tsx costs about half a
 * second of a core, which would otherwise dominate the bench's time. Each job still creates its peer
 * afresh (new connections, empty memo), so reuse changes nothing measured. A worker that was killed
 * or misbehaved is dropped and replaced.
 */
export class WorkerPool {
  private readonly idle: WorkerProcess[] = [];

  constructor(private readonly redisUrl: string) {}

  /** Starts workers ahead of time, so the first scenario does not pay for them. */
  async warm(count: number): Promise<void> {
    const missing = Math.max(0, count - this.idle.length);
    const started = Array.from({ length: missing }, () => new WorkerProcess(this.redisUrl));
    await Promise.all(started.map((worker) => worker.up));
    this.idle.push(...started);
  }

  async take(count: number): Promise<WorkerProcess[]> {
    // Taken synchronously, before any await, so concurrent takes never share a worker.
    const alive = this.idle.filter((worker) => worker.alive);
    const taken = alive.splice(0, count);
    this.idle.splice(0, this.idle.length, ...alive);
    const started = Array.from({ length: count - taken.length }, () => new WorkerProcess(this.redisUrl));
    await Promise.all(started.map((worker) => worker.up));
    return [...taken, ...started];
  }

  /** Back to the pool, when the job ended cleanly; killed otherwise (its state is unknown). */
  give(workers: WorkerProcess[], clean: boolean): void {
    for (const worker of workers) {
      if (clean && worker.alive) this.idle.push(worker);
      else worker.kill();
    }
  }

  /** A process that has never run a job (S4's fresh process). Not pooled: the caller kills it. */
  async fresh(): Promise<WorkerProcess> {
    const worker = new WorkerProcess(this.redisUrl);
    await worker.up;
    return worker;
  }

  async close(): Promise<void> {
    await Promise.all(this.idle.splice(0).map((worker) => worker.stop()));
  }
}
