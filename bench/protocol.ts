import type { PeerId, PeerOptions } from './peers.js';

/**
 * What the bench (parent) and its worker processes say to each other. A worker is forked for one job
 * and lives for it only: it creates its peer and prepares (→ 'ready'), waits for 'go' and starts at
 * the moment it names, measures (→ 'result'), and exits when the parent disconnects.
 */
export type Job = { peer: PeerId; options: PeerOptions } & (
  | {
      /** `callers` concurrent initOnce(key) calls here; fn sleeps `fnMs`. With `warmup`, this process
       * first leads a key of its own, as a deployed process has by the time it waits on another. */
      kind: 'fanout';
      key: string;
      callers: number;
      fnMs: number;
      warmup: boolean;
    }
  | { kind: 'cached'; key: string; calls: number; maxMs: number }
  | { kind: 'fresh'; key: string }
  | {
      /** `total` distinct keys, `inFlight` at a time, fn returns at once; then, with `memory`, the
       * live heap while `inFlight` keys are in flight at once. */
      kind: 'keys';
      total: number;
      inFlight: number;
      warmupKeys: number;
      memory: boolean;
    }
  | {
      /** S6: one initOnce(key) call, cold; fn blocks the event loop for `busyMs` (a busy loop), then
       * returns a value naming this execution. */
      kind: 'cpu';
      key: string;
      busyMs: number;
    }
);

export interface FanoutResult {
  /** now() at which each caller resolved. */
  resolvedAt: number[];
  /** now() at which fn returned in this process, if it ran here. */
  finishedAt: number | undefined;
  fnRuns: number;
}

export interface CachedResult {
  calls: number;
  elapsedMs: number;
  /** fn runs after the key was done (must be 0). */
  fnRuns: number;
}

export interface FreshResult {
  firstCallMs: number;
  fnRuns: number;
}

export interface KeysResult {
  elapsedMs: number;
  /** Keys whose fn ran other than exactly once. */
  wrongRuns: number;
  /** Live heap (after gc()) at its peak, minus the same before, per key in flight. */
  heapPerKey: number | undefined;
}

/** One execution of a CPU-bound fn: now() at its start and end, and what its busy loop took. */
export interface CpuExecution {
  startedAt: number;
  endedAt: number;
  /** Wall time the busy loop blocked the event loop. */
  busyMs: number;
  /** CPU time of this process (every thread) while the loop ran. */
  cpuMs: number;
  /** The value this execution returned: `<pid>:<n>`. */
  value: string;
}

export interface CpuResult {
  executions: CpuExecution[];
  /** What this process's call resolved with, or why it rejected. */
  value: string | undefined;
  error: string | undefined;
  /** now() when the call settled. */
  settledAt: number;
}

export type JobResult = FanoutResult | CachedResult | FreshResult | KeysResult | CpuResult;

/** Requests sent per command name (`evalsha:<sha prefix>` tells scripts apart). */
export type Requests = Record<string, number>;

export type ToWorker = { type: 'go'; at: number };
export type FromWorker =
  | { type: 'ready' }
  | { type: 'fn-start'; at: number }
  | { type: 'result'; result: JobResult; requests: Requests; failures: string[] }
  | { type: 'error'; message: string };

/**
 * Wall-clock milliseconds with sub-millisecond resolution. `performance.now()` alone is per process;
 * adding `timeOrigin` puts every process of this machine on its one clock, so a time taken in the
 * leader (fn returned) and one taken in another process (a caller resolved) can be subtracted.
 */
export function now(): number {
  return origin + performance.now();
}
const origin = performance.timeOrigin; // read once: the getter costs microseconds, on every caller's wake

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

export function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
