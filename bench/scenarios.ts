import { Redis } from 'ioredis';
import { LocalRedis } from '../scripts/redis-server.js';
import { commandStats, diffStats, totalCommands } from '../test/helpers/redis-server.js';
import { Worker } from './harness.js';
import type { PeerId } from './peers.js';
import type { CachedResult, FanoutResult, FreshResult, Job, KeysResult, Requests } from './protocol.js';
import { now, sleep } from './protocol.js';
import { percentile } from './stats.js';

const LOCKS: PeerId[] = ['redis-once', 'ideal', 'redlock', 'redlock4', 'semaphore'];

/**
 * Every knob of one run. Full: about five and a half minutes on two cores, most of it S1's 25 runs of
 * 8 fresh processes each and the polling peers' tails, and S6's 18 runs of 4 + 1 fresh processes, each
 * busy-looping twice the lease (about a minute and a half).
 */
export const FULL = {
  quick: false as boolean,
  s1: { reps: 5, processes: 8, callers: 125, fnMs: 500, leaseMs: 2_000, peers: LOCKS },
  s3: { reps: 3, processes: 4, callers: 25, fnMs: 2_000, leaseMs: 2_000, killAfterMs: 200, peers: LOCKS },
  s4: { reps: 3, calls: 2_000_000, peerMaxMs: 300, peers: LOCKS },
  s5: {
    reps: 3,
    total: 20_000,
    inFlight: [100, 1_000, 10_000],
    warmupKeys: 1_000,
    coldKeys: 2_000,
    peers: ['redis-once', 'no-standby', 'reference'] as PeerId[],
  },
  s6: {
    reps: 3,
    processes: 4,
    // 2 s: room for a cold process's standby thread to start on a busy machine (README, "A busy event
    // loop"); with 1 s, a loaded machine sometimes lost the race. fn still blocks twice the lease.
    leaseMs: 2_000,
    busyMs: 4_000,
    peers: ['redis-once', 'no-standby', 'ideal', 'redlock', 'redlock4', 'semaphore'] as PeerId[],
  },
};
export type Config = typeof FULL;

/** Quick (about a minute and a half): one repetition of everything, a 1 s lease and fn in S3, fewer calls and keys. */
export const QUICK: Config = {
  quick: true,
  s1: { ...FULL.s1, reps: 1 },
  s3: { ...FULL.s3, reps: 1, fnMs: 1_000, leaseMs: 1_000 },
  s4: { ...FULL.s4, reps: 1, calls: 500_000 },
  s5: { ...FULL.s5, reps: 1, total: 5_000, warmupKeys: 500 },
  s6: { ...FULL.s6, reps: 1 },
};

/** A run in which fn did not run exactly once per key: recorded and reported, never thrown. */
export interface Violation {
  scenario: string;
  peer: PeerId;
  rep: number;
  detail: string;
}

export interface Context {
  server: LocalRedis;
  /** The harness's own connection (flushes, INFO): never a peer's. */
  admin: Redis;
  config: Config;
  log(line: string): void;
  violation(scenario: string, peer: PeerId, rep: number, detail: string): void;
}

/** One list per peer, one entry per repetition. */
export type ByPeer<T> = Partial<Record<PeerId, T[]>>;

export function record<T>(byPeer: ByPeer<T>, peer: PeerId, value: T): void {
  byPeer[peer] = [...(byPeer[peer] ?? []), value];
}

export interface FanoutRun {
  /** Wake latency = caller resolved − fn returned in the leader, over every caller (ms). */
  p50: number;
  p99: number;
  max: number;
  resolved: number;
  /** fn executions begun (heard of by the parent) and completed (reported by the survivors). */
  starts: number;
  completions: number;
  /** Commands Redis executed (INFO commandstats delta, scripts' inner commands included). */
  commands: number;
  byCommand: Record<string, number>;
  /** Requests the processes sent (one EVALSHA is one, whatever its script runs). */
  requests: number;
  byRequest: Requests;
  /** S3: kill → the next fn start anywhere (ms). */
  takeoverMs: number | undefined;
  failures: string[];
}

interface Shape {
  processes: number;
  callers: number;
  fnMs: number;
  leaseMs: number;
  /** S3: SIGKILL the process whose fn starts first, this long after fn started. */
  killAfterMs?: number;
}

let runs = 0;
const options = (redisUrl: string, leaseMs = 30_000) => ({ redisUrl, leaseMs, namespace: `run${++runs}` });

/**
 * P new processes × C callers of one key, started at one moment. Never throws: a run that breaks
 * comes back with its reason in `failures`, and the bench goes on.
 */
async function fanout(ctx: Context, at: [string, PeerId, number], shape: Shape, warmup: boolean) {
  const [scenario, peer, rep] = at;
  const { processes, callers, fnMs, leaseMs, killAfterMs } = shape;
  const job: Job = {
    kind: 'fanout',
    peer,
    options: options(ctx.server.url, leaseMs),
    key: 'init',
    callers,
    fnMs,
    warmup,
  };
  const workers = Array.from({ length: processes }, () => new Worker(job));
  const failures: string[] = [];
  const byRequest: Requests = {};
  let run: FanoutRun | undefined;
  try {
    await Promise.all(workers.map((worker) => worker.ready));
    await sleep(200); // the start-up of 8 processes on 2 cores settles before anything is timed
    const starts: number[] = [];
    let killed: Worker | undefined;
    let killedAt = Number.NaN;
    for (const worker of workers) {
      worker.onFnStart = (t) => {
        starts.push(t);
        if (killAfterMs === undefined || killed) return;
        killed = worker;
        const kill = () => {
          killedAt = now();
          worker.kill();
        };
        setTimeout(kill, t + killAfterMs - now());
      };
    }
    const before = await commandStats(ctx.admin);
    const start = now() + 50;
    const settled = await Promise.allSettled(workers.map((worker) => worker.go(start, 60_000)));
    const byCommand = diffStats(before, await commandStats(ctx.admin));
    const results: FanoutResult[] = [];
    settled.forEach((outcome, i) => {
      if (outcome.status === 'rejected') {
        if (workers[i] !== killed) failures.push(String(outcome.reason));
        return;
      }
      results.push(outcome.value.result as FanoutResult);
      failures.push(...outcome.value.failures);
      for (const [name, n] of Object.entries(outcome.value.requests))
        byRequest[name] = (byRequest[name] ?? 0) + n;
    });
    // The value every caller waited for exists from the moment the completed run's fn returned.
    const finished = Math.min(...results.map((r) => r.finishedAt ?? Number.POSITIVE_INFINITY));
    const latencies = results.flatMap((r) => r.resolvedAt.map((t) => t - finished)).sort((a, b) => a - b);
    const expected = processes * callers - (killed ? callers : 0);
    if (latencies.length < expected && failures.length === 0)
      failures.push(`${expected - latencies.length} callers never resolved`);
    run = {
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      max: latencies.at(-1) ?? Number.NaN,
      resolved: latencies.length,
      starts: starts.length,
      completions: results.reduce((n, r) => n + r.fnRuns, 0),
      commands: totalCommands(byCommand),
      byCommand: Object.fromEntries(byCommand),
      requests: Object.values(byRequest).reduce((a, b) => a + b, 0),
      byRequest,
      takeoverMs: killed ? (starts.find((t) => t > killedAt) ?? Number.NaN) - killedAt : undefined,
      failures: dedupe(failures),
    };
    if (run.completions !== 1) ctx.violation(scenario, peer, rep, `fn completed ${run.completions} times`);
    else if (!killed && run.starts !== 1)
      ctx.violation(scenario, peer, rep, `fn started ${run.starts} times`);
  } catch (error) {
    failures.push(`run failed: ${String(error)}`);
  } finally {
    await Promise.all(workers.map((worker) => worker.stop()));
  }
  const nan = Number.NaN;
  const none = {
    p50: nan,
    p99: nan,
    max: nan,
    resolved: 0,
    starts: 0,
    completions: 0,
    commands: nan,
    requests: nan,
  };
  return run ?? { ...none, byCommand: {}, byRequest, takeoverMs: undefined, failures };
}

const ms = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? '—' : `${n.toFixed(1)} ms`);
const perSec = (n: number) => Math.round(n).toLocaleString('en-US');
const suffix = (failures: string[]) => (failures.length ? ` FAILURES ${failures.join('; ')}` : '');

/**
 * S1: for each repetition and each peer, 8 new processes; each first leads a warm-up key of its own,
 * then all 8 × 125 callers call initOnce(one key) at once, fn taking 500 ms on one of them. Peers are
 * interleaved within each repetition, so a slow moment of the machine is not pinned on one library.
 */
export async function s1(ctx: Context): Promise<ByPeer<FanoutRun>> {
  const { reps, peers, ...shape } = ctx.config.s1;
  const out: ByPeer<FanoutRun> = {};
  for (let rep = 1; rep <= reps; rep++) {
    for (const peer of peers) {
      await ctx.admin.flushall();
      const run = await fanout(ctx, ['S1', peer, rep], shape, true);
      record(out, peer, run);
      ctx.log(
        `S1 rep ${rep} ${peer.padEnd(10)} p50 ${ms(run.p50)} p99 ${ms(run.p99)} max ${ms(run.max)} ` +
          `commands ${run.commands} requests ${run.requests}${suffix(run.failures)}`,
      );
    }
  }
  return out;
}

/**
 * S3: the process whose fn starts first is SIGKILLed 200 ms into a 2 s fn (lease 2 s); we time kill →
 * the next fn start anywhere and count completed executions. A peer's repetitions run side by side,
 * each on its own key: a takeover is paced by the lease, not by the CPU.
 */
export async function s3(ctx: Context): Promise<ByPeer<FanoutRun>> {
  const { reps, peers, ...shape } = ctx.config.s3;
  const out: ByPeer<FanoutRun> = {};
  for (const peer of peers) {
    await ctx.admin.flushall();
    const all = await Promise.all(
      Array.from({ length: reps }, (_, i) => fanout(ctx, ['S3', peer, i + 1], shape, false)),
    );
    out[peer] = all;
    for (const [i, run] of all.entries())
      ctx.log(
        `S3 rep ${i + 1} ${peer.padEnd(10)} takeover ${ms(run.takeoverMs)} starts ${run.starts} ` +
          `completions ${run.completions}${suffix(run.failures)}`,
      );
  }
  return out;
}

export interface S4 {
  warm: ByPeer<{ callsPerSec: number; failures: string[] }>;
  fresh: ByPeer<{ firstCallMs: number; requests: Requests; commands: number; failures: string[] }>;
}

/**
 * S4: warm, `await initOnce(key, fn)` in a loop in the process that made the key done (peers that
 * read Redis on every call stop after a time cap); fresh, the first call of a process that never
 * called before, on the done key: what it sends and what Redis executes for it.
 */
export async function s4(ctx: Context): Promise<S4> {
  const { reps, calls, peerMaxMs, peers } = ctx.config.s4;
  const out: S4 = { warm: {}, fresh: {} };
  for (let rep = 1; rep <= reps; rep++) {
    for (const peer of peers) {
      await ctx.admin.flushall();
      const common = { peer, options: options(ctx.server.url), key: 'config' };
      const maxMs = peer === 'redis-once' ? 30_000 : peerMaxMs;
      const warm = new Worker({ kind: 'cached', ...common, calls, maxMs });
      const fresh = new Worker({ kind: 'fresh', ...common });
      try {
        await Promise.all([warm.ready, fresh.ready]);
        const w = await warm.go(now(), 60_000);
        const loop = w.result as CachedResult;
        const callsPerSec = (loop.calls / loop.elapsedMs) * 1000;
        record(out.warm, peer, { callsPerSec, failures: w.failures });
        if (loop.fnRuns !== 0) ctx.violation('S4', peer, rep, `fn ran ${loop.fnRuns} more times after done`);
        await sleep(100);
        const before = await commandStats(ctx.admin);
        const f = await fresh.go(now(), 30_000);
        const commands = totalCommands(diffStats(before, await commandStats(ctx.admin)));
        const { firstCallMs, fnRuns } = f.result as FreshResult;
        record(out.fresh, peer, { firstCallMs, requests: f.requests, commands, failures: f.failures });
        if (fnRuns !== 0) ctx.violation('S4', peer, rep, `fn ran ${fnRuns} times on a done key`);
        ctx.log(
          `S4 rep ${rep} ${peer.padEnd(10)} ${perSec(callsPerSec)} calls/s; fresh first call ${ms(firstCallMs)}, ` +
            `requests ${JSON.stringify(f.requests)}, commands ${commands}${suffix([...w.failures, ...f.failures])}`,
        );
      } catch (error) {
        record(out.warm, peer, { callsPerSec: Number.NaN, failures: [String(error)] });
      } finally {
        await Promise.all([warm.stop(), fresh.stop()]);
      }
    }
  }
  return out;
}

export interface KeysRun {
  keysPerSec: number;
  heapPerKey: number | undefined;
  /** What each key cost inside Redis: commands executed (scripts' inner ones included), CPU time. */
  commandsPerKey: number;
  redisCpuUsPerKey: number;
  failures: string[];
}

export interface S5 {
  /** inFlight → peer → repetitions. */
  levels: Record<number, ByPeer<KeysRun>>;
  cold: ByPeer<KeysRun>;
}

/**
 * S5: one process, distinct keys, fn returns at once: `total` keys with 100, 1,000 and 10,000 in
 * flight (after an unmeasured warm-up), then the live heap per key in flight. Cold: a new process on
 * a redis-server started for it (no script loaded), `coldKeys` keys at once.
 */
export async function s5(ctx: Context): Promise<S5> {
  const { reps, total, inFlight, warmupKeys, coldKeys, peers } = ctx.config.s5;
  const out: S5 = { levels: {}, cold: {} };
  for (let rep = 1; rep <= reps; rep++) {
    for (const level of inFlight) {
      for (const peer of peers) {
        await ctx.admin.flushall();
        const job = {
          peer,
          options: options(ctx.server.url),
          total,
          inFlight: level,
          warmupKeys,
          memory: true,
        };
        const run = await keys(ctx, rep, { kind: 'keys', ...job }, ['--expose-gc']);
        out.levels[level] ??= {};
        record(out.levels[level], peer, run);
        ctx.log(
          `S5 rep ${rep} ${String(level).padStart(6)} in flight ${peer.padEnd(10)} ${perSec(run.keysPerSec)} ` +
            `keys/s, ${perSec(run.heapPerKey ?? Number.NaN)} B/key, ${run.commandsPerKey.toFixed(1)} commands/key, ` +
            `Redis CPU ${run.redisCpuUsPerKey.toFixed(1)} µs/key${suffix(run.failures)}`,
        );
      }
    }
    for (const peer of peers) {
      const server = await LocalRedis.start({ name: 'cold' });
      try {
        const job = {
          peer,
          options: options(server.url),
          total: coldKeys,
          inFlight: coldKeys,
          warmupKeys: 0,
        };
        const run = await keys(ctx, rep, { kind: 'keys', ...job, memory: false });
        record(out.cold, peer, run);
        ctx.log(
          `S5 rep ${rep} cold ${peer.padEnd(10)} ${perSec(run.keysPerSec)} keys/s${suffix(run.failures)}`,
        );
      } finally {
        await server.stop();
      }
    }
  }
  return out;
}

async function keys(ctx: Context, rep: number, job: Job & { kind: 'keys' }, flags: string[] = []) {
  const worker = new Worker(job, flags);
  const admin = job.options.redisUrl === ctx.server.url ? ctx.admin : new Redis(job.options.redisUrl);
  const cpu = async () => {
    const info = await admin.info('cpu');
    return ['used_cpu_user', 'used_cpu_sys'].reduce(
      (s, f) => s + Number(new RegExp(`${f}:([\\d.]+)`).exec(info)?.[1]),
      0,
    );
  };
  try {
    await worker.ready;
    const [stats, cpuBefore] = [await commandStats(admin), await cpu()];
    const { result, failures } = await worker.go(now(), 300_000);
    const commands = totalCommands(diffStats(stats, await commandStats(admin)));
    const { elapsedMs, wrongRuns, heapPerKey } = result as KeysResult;
    if (wrongRuns > 0) ctx.violation('S5', job.peer, rep, `${wrongRuns} keys not run exactly once`);
    const n = job.total + (job.memory ? job.inFlight : 0); // the memory wave's keys came after the timing
    const redisCpuUsPerKey = (((await cpu()) - cpuBefore) * 1e6) / n;
    const keysPerSec = (job.total / elapsedMs) * 1000;
    return {
      keysPerSec,
      heapPerKey,
      commandsPerKey: commands / n,
      redisCpuUsPerKey,
      failures: dedupe(failures),
    };
  } catch (error) {
    const nan = Number.NaN;
    return {
      keysPerSec: nan,
      heapPerKey: nan,
      commandsPerKey: nan,
      redisCpuUsPerKey: nan,
      failures: [String(error)],
    };
  } finally {
    if (admin !== ctx.admin) admin.disconnect();
    await worker.stop();
  }
}

/** The same message from 1,000 callers is one line, with its count. */
export function dedupe(messages: string[]): string[] {
  const counts = new Map<string, number>();
  for (const message of messages) counts.set(message, (counts.get(message) ?? 0) + 1);
  return [...counts].slice(0, 10).map(([message, n]) => (n > 1 ? `${message} (×${n})` : message));
}
