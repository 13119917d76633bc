import { now, sleep } from '../clock.js';
import type { PeerId } from '../peers/peer.js';
import type { FanoutResult, RequestCounts } from '../protocol.js';
import { type CommandCounts, delta, type RedisServer, total } from '../server.js';
import { ascending, percentile } from '../stats.js';
import type { WorkerPool, WorkerProcess } from '../workers.js';

/** P processes × C callers of one key, as S1, S2 and S3 need it. */
export interface FanoutSpec {
  peer: PeerId;
  processes: number;
  callersPerProcess: number;
  fnMs: number;
  leaseMs: number;
  /** S3: SIGKILL the process whose fn starts first, this long after fn started. */
  killLeaderAfterMs?: number;
  /** A run that has not finished by then is recorded as failed (a peer that hangs). */
  timeoutMs: number;
  /** FLUSHALL first (default). Runs that share the server at the same time flush once, before. */
  flush?: boolean;
}

export interface FanoutOutcome {
  /** Per caller that resolved: resolved − fn finished on the leader (ms). */
  latencies: number[];
  p50: number;
  p99: number;
  max: number;
  callers: number;
  resolved: number;
  /** Callers that rejected, runs that timed out, stray errors: what went wrong, verbatim (capped). */
  failures: string[];
  /** fn executions begun and completed, as counted in Redis. */
  starts: number;
  completions: number;
  /** Set when fn did not complete exactly once (and, without a kill, did not start exactly once). */
  violation: string | undefined;
  /** Commands Redis executed (INFO commandstats, including those run inside scripts). */
  commands: number;
  byCommand: CommandCounts;
  /** Requests the processes sent (one EVALSHA is one, whatever its script runs). */
  requests: number;
  requestsByKind: RequestCounts;
  /**
   * BENCH_TRACE=1 only, per process, ms after fn finished: when its first pub/sub message arrived,
   * and when its first and last caller resolved.
   */
  trace?: Array<{ delivered: number | undefined; first: number; last: number }>;
  /** S3: kill → the next fn start anywhere (ms). */
  takeoverMs: number | undefined;
  wallMs: number;
}

let runCounter = 0;

/**
 * Runs one fan-out and measures it. Never throws: a run that cannot even start (a peer that fails to
 * connect, say) comes back with its reason in `failures` and no numbers, and the bench goes on.
 */
export async function runFanout(
  server: RedisServer,
  pool: WorkerPool,
  spec: FanoutSpec,
): Promise<FanoutOutcome> {
  try {
    return await measureFanout(server, pool, spec);
  } catch (error) {
    return {
      latencies: [],
      p50: Number.NaN,
      p99: Number.NaN,
      max: Number.NaN,
      callers: spec.processes * spec.callersPerProcess,
      resolved: 0,
      failures: [`run failed: ${error instanceof Error ? error.message : String(error)}`],
      starts: 0,
      completions: 0,
      violation: undefined,
      commands: Number.NaN,
      byCommand: {},
      requests: Number.NaN,
      requestsByKind: {},
      takeoverMs: undefined,
      wallMs: Number.NaN,
    };
  }
}

async function measureFanout(
  server: RedisServer,
  pool: WorkerPool,
  spec: FanoutSpec,
): Promise<FanoutOutcome> {
  const run = ++runCounter;
  const namespace = `bench${run}`;
  const key = `init:${run}`;
  const counterKey = `harness:${run}:fn`;
  if (spec.flush !== false) await server.flush();
  const workers = await pool.take(spec.processes);
  const failures: string[] = [];
  let clean = true;
  const startedAt = performance.now();

  // fn starts, in the order the parent hears of them: S3 kills the first and times the next.
  const starts: number[] = [];
  let killedAt: number | undefined;
  let killed: WorkerProcess | undefined;
  for (const worker of workers) {
    worker.onFnStart = (at) => {
      starts.push(at);
      if (spec.killLeaderAfterMs === undefined || killed) return;
      killed = worker;
      setTimeout(
        () => {
          killedAt = now();
          worker.kill();
        },
        Math.max(0, at + spec.killLeaderAfterMs - now()),
      );
    };
  }

  const job = {
    kind: 'fanout' as const,
    peer: spec.peer,
    options: { redisUrl: server.url, leaseMs: spec.leaseMs, namespace },
    key,
    callers: spec.callersPerProcess,
    fn: { ms: spec.fnMs, counterKey },
  };
  try {
    await Promise.all(workers.map((worker) => worker.prepare(job)));
  } catch (error) {
    pool.give(workers, false);
    throw error;
  }
  const before = await server.commandstats();
  const settled = await Promise.allSettled(workers.map((worker) => worker.go(spec.timeoutMs)));
  // Unsubscribes and releases sent as callers resolve are part of the cost; let them land.
  await sleep(100);
  const after = await server.commandstats();
  const counted = await server.admin.hgetall(counterKey);
  const fnStarts = Number(counted.starts ?? 0);
  const completions = Number(counted.completions ?? 0);

  const results: FanoutResult[] = [];
  settled.forEach((outcome, i) => {
    if (outcome.status === 'fulfilled') results.push(outcome.value as FanoutResult);
    else if (workers[i] !== killed) {
      failures.push(outcome.reason instanceof Error ? outcome.reason.message : String(outcome.reason));
      clean = false;
    }
  });

  const requestsByKind: RequestCounts = {};
  await Promise.all(
    workers
      .filter((worker) => worker.alive)
      .map(async (worker) => {
        try {
          for (const [name, n] of Object.entries(await worker.release()))
            requestsByKind[name] = (requestsByKind[name] ?? 0) + n;
        } catch (error) {
          failures.push(error instanceof Error ? error.message : String(error));
          clean = false;
        }
      }),
  );
  for (const worker of workers) worker.onFnStart = undefined;
  pool.give(workers, clean);

  // The value every caller waited for was recorded when the first completed run finished.
  const finished = Math.min(
    ...results.flatMap((result) => result.runs.map((r) => r.finishedAt ?? Number.POSITIVE_INFINITY)),
  );
  const latencies = results.flatMap((result) => result.resolvedAt.map((at) => at - finished));
  const sorted = ascending(latencies.filter(Number.isFinite));
  for (const result of results) failures.push(...result.failures);

  const byCommand = delta(before, after, { hincrby: fnStarts + completions });
  const callers = spec.processes * spec.callersPerProcess;
  const killedCallers = killed ? spec.callersPerProcess : 0;
  let violation: string | undefined;
  if (completions !== 1) violation = `fn completed ${completions} times`;
  else if (spec.killLeaderAfterMs === undefined && fnStarts !== 1) violation = `fn started ${fnStarts} times`;
  const resolved = sorted.length;
  if (resolved < callers - killedCallers && failures.length === 0)
    failures.push(`${callers - killedCallers - resolved} callers never resolved`);

  const trace = results.some((r) => r.messageAt)
    ? results.map((r) => ({
        delivered: r.messageAt?.map((at) => at - finished).find((at) => at > -1),
        first: Math.min(...r.resolvedAt) - finished,
        last: Math.max(...r.resolvedAt) - finished,
      }))
    : undefined;

  return {
    trace,
    latencies: sorted,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted.length ? sorted[sorted.length - 1]! : Number.NaN,
    callers,
    resolved,
    failures: dedupe(failures),
    starts: fnStarts,
    completions,
    violation,
    commands: total(byCommand),
    byCommand,
    requests: total(requestsByKind),
    requestsByKind,
    takeoverMs: killedAt === undefined ? undefined : nextStart(starts, killedAt),
    wallMs: performance.now() - startedAt,
  };
}

/** The first fn start after the kill, relative to it. */
function nextStart(starts: number[], killedAt: number): number | undefined {
  const next = starts.find((at) => at > killedAt);
  return next === undefined ? undefined : next - killedAt;
}

/** The same message from 1,000 callers is one line, with its count. */
export function dedupe(messages: string[]): string[] {
  const counts = new Map<string, number>();
  for (const message of messages) counts.set(message, (counts.get(message) ?? 0) + 1);
  return [...counts].slice(0, 10).map(([message, n]) => (n > 1 ? `${message} (×${n})` : message));
}
