import type { PeerId, PeerOptions } from './peers/peer.js';

/** Requests a process sent, per command name (`evalsha:<sha prefix>` tells scripts apart). */
export type RequestCounts = Record<string, number>;

/**
 * The init every scenario runs: it sleeps `ms`, and counts itself in Redis (HINCRBY `counterKey`
 * starts / completions) so executions are counted even in a process that is killed mid-run.
 */
export interface FnSpec {
  ms: number;
  counterKey: string;
}

interface JobBase {
  peer: PeerId;
  options: PeerOptions;
}

/** `callers` concurrent initOnce(key) calls in this process. */
export interface FanoutJob extends JobBase {
  kind: 'fanout';
  key: string;
  callers: number;
  fn: FnSpec;
}

/** Makes `key` done during prepare, then times `calls` sequential awaited calls (or `maxMs`). */
export interface CachedJob extends JobBase {
  kind: 'cached';
  key: string;
  calls: number;
  maxMs: number;
}

/** One call on an already-done key, from a process that has not called before. */
export interface FreshJob extends JobBase {
  kind: 'fresh';
  key: string;
}

/** `keys` distinct keys, `concurrency` at a time, each with a trivial fn. */
export interface ThroughputJob extends JobBase {
  kind: 'throughput';
  keyPrefix: string;
  keys: number;
  concurrency: number;
}

export type Job = FanoutJob | CachedJob | FreshJob | ThroughputJob;

export interface FnRun {
  startedAt: number;
  finishedAt?: number;
}

export interface FanoutResult {
  kind: 'fanout';
  /** now() at which each caller's initOnce resolved. */
  resolvedAt: number[];
  failures: string[];
  runs: FnRun[];
  /** BENCH_TRACE=1 only: now() at which pub/sub messages reached this process. */
  messageAt?: number[];
}

export interface CachedResult {
  kind: 'cached';
  calls: number;
  elapsedMs: number;
  /** fn runs after the key was done (must be 0). */
  fnRuns: number;
  failures: string[];
}

export interface FreshResult {
  kind: 'fresh';
  firstCallMs: number;
  fnRuns: number;
  failures: string[];
}

export interface ThroughputResult {
  kind: 'throughput';
  keys: number;
  elapsedMs: number;
  /** Keys whose fn ran other than exactly once. */
  wrongRuns: number;
  failures: string[];
}

export type JobResult = FanoutResult | CachedResult | FreshResult | ThroughputResult;

/**
 * Parent → worker. One job at a time: prepare (connect) → go (measure) → release (close). Each reply
 * carries the requests sent during its step.
 */
export type Command = { type: 'prepare'; job: Job } | { type: 'go' } | { type: 'release' };

/** Worker → parent. */
export type Message =
  | { type: 'up' }
  | { type: 'ready'; requests: RequestCounts }
  | { type: 'fn-start'; at: number }
  | { type: 'result'; result: JobResult }
  | { type: 'released'; requests: RequestCounts }
  | { type: 'error'; message: string };
