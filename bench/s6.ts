import { Worker } from './harness.js';
import type { PeerId } from './peers.js';
import type { CpuExecution, CpuResult, Job } from './protocol.js';
import { now, sleep } from './protocol.js';
import { type ByPeer, type Context, dedupe, record } from './scenarios.js';

/** One execution of fn, as the report lists it: which process, and when (ms after the start). */
export interface CpuSpan {
  /** 1…processes; `processes + 1` is the later process. */
  process: number;
  from: number;
  to: number;
  busyMs: number;
  cpuMs: number;
}

export interface CpuRun {
  processes: number;
  /** fn executions begun (heard of by the parent) and run to their end (reported by the processes). */
  starts: number;
  executions: number;
  /** Executions that began while an earlier one was still running. */
  overlapped: number;
  /** Busy-loop wall time and CPU time of every execution after the first. */
  wastedBusyMs: number;
  wastedCpuMs: number;
  /** Distinct values the processes' calls resolved with (the later process's included). */
  values: number;
  /** How many processes got each value, most first; and how many got the one the later process got. */
  split: number[];
  keptBy: number;
  /** Processes whose call rejected, and why (the later process's error is under `later`). */
  rejected: number;
  errors: string[];
  /** What a process started afterwards, calling the same path, got: the value the cluster kept. */
  later: { value: string | undefined; error: string | undefined; executions: number } | undefined;
  /** Every process got one value, the same, and so did the later process without running fn. */
  consistent: boolean;
  /** Start → the last process had its value (NaN when one rejected); start → the last call settled. */
  allValuesMs: number;
  settledMs: number;
  spans: CpuSpan[];
  failures: string[];
}

/**
 * S6, a CPU-bound init: for each repetition and peer, `processes` new processes call initOnce(one key)
 * at one moment, cold; fn blocks its event loop with a busy loop for `busyMs` (2 × the lease), then
 * returns a value naming that execution, which the peer writes as the key's result. Renewals on the
 * leader's main thread cannot fire while it spins. Once every process settled, one more process (forked
 * with the others, idle until then) calls the same path: what it gets is the value the cluster kept.
 * Peers are interleaved within each repetition, one run at a time (their busy loops share two cores).
 */
export async function s6(ctx: Context): Promise<ByPeer<CpuRun>> {
  const { reps, peers, processes, leaseMs, busyMs } = ctx.config.s6;
  const out: ByPeer<CpuRun> = {};
  for (let rep = 1; rep <= reps; rep++) {
    for (const peer of peers) {
      await ctx.admin.flushall();
      const run = await cpuRun(ctx, peer, rep, processes, leaseMs, busyMs);
      record(out, peer, run);
      const spans = run.spans.map((s) => `P${s.process} ${s.from.toFixed(0)}–${s.to.toFixed(0)}`).join(', ');
      const outcome = run.consistent
        ? 'consistent'
        : run.values === 0
          ? `no value, ${run.rejected} rejected (${run.errors.join('; ')})`
          : `${run.values} values (processes: ${run.split.join(' + ')}; kept: ${run.keptBy}'s), ${run.rejected} rejected` +
            (run.errors.length ? ` (${run.errors.join('; ')})` : '');
      ctx.log(
        `S6 rep ${rep} ${peer.padEnd(10)} executions ${run.executions} (overlapped ${run.overlapped}) ` +
          `[${spans}] wasted ${run.wastedBusyMs.toFixed(0)} ms busy / ${run.wastedCpuMs.toFixed(0)} ms CPU; ` +
          `${outcome}; later process: ${run.later?.value ?? run.later?.error ?? '—'}; ` +
          `all values ${fmt(run.allValuesMs)}, settled ${fmt(run.settledMs)}` +
          (run.failures.length ? ` FAILURES ${run.failures.join('; ')}` : ''),
      );
    }
  }
  return out;
}

const fmt = (n: number) => (Number.isFinite(n) ? `${n.toFixed(0)} ms` : '—');

async function cpuRun(
  ctx: Context,
  peer: PeerId,
  rep: number,
  processes: number,
  leaseMs: number,
  busyMs: number,
): Promise<CpuRun> {
  const job: Job = {
    kind: 'cpu',
    peer,
    options: { redisUrl: ctx.server.url, leaseMs, namespace: 's6' }, // flushed before every run
    key: 'init',
    busyMs,
  };
  const workers = Array.from({ length: processes }, () => new Worker(job));
  const later = new Worker(job);
  const failures: string[] = [];
  let starts = 0;
  try {
    await Promise.all([...workers, later].map((worker) => worker.ready));
    await sleep(200); // the start-up of the processes settles before anything is timed
    for (const worker of [...workers, later]) worker.onFnStart = () => starts++;
    const start = now() + 50;
    const timeoutMs = 60_000;
    const settled = await Promise.allSettled(workers.map((worker) => worker.go(start, timeoutMs)));
    const results: (CpuResult | undefined)[] = settled.map((outcome) => {
      if (outcome.status === 'rejected') {
        failures.push(String(outcome.reason));
        return undefined;
      }
      failures.push(...outcome.value.failures);
      return outcome.value.result as CpuResult;
    });
    let last: CpuResult | undefined;
    try {
      const reply = await later.go(now(), timeoutMs);
      failures.push(...reply.failures);
      last = reply.result as CpuResult;
    } catch (error) {
      failures.push(`later process: ${String(error)}`);
    }
    return summarize(processes, start, starts, results, last, failures);
  } catch (error) {
    failures.push(`run failed: ${String(error)}`);
    return summarize(
      processes,
      now(),
      starts,
      workers.map(() => undefined),
      undefined,
      failures,
    );
  } finally {
    await Promise.all([...workers, later].map((worker) => worker.stop()));
  }

  function summarize(
    n: number,
    start: number,
    begun: number,
    results: (CpuResult | undefined)[],
    last: CpuResult | undefined,
    failed: string[],
  ): CpuRun {
    const all: [number, CpuExecution][] = [...results, last].flatMap((r, i) =>
      (r?.executions ?? []).map((e): [number, CpuExecution] => [i + 1, e]),
    );
    all.sort((a, b) => a[1].startedAt - b[1].startedAt);
    let overlapped = 0;
    let runningUntil = Number.NEGATIVE_INFINITY;
    for (const [, e] of all) {
      if (e.startedAt < runningUntil) overlapped++;
      runningUntil = Math.max(runningUntil, e.endedAt);
    }
    const after = all.slice(1).map(([, e]) => e);
    const got = results.map((r) => r?.value);
    const values = new Set([...got, last?.value].filter((v) => v !== undefined));
    const errors = results.flatMap((r) => (r?.error ? [r.error] : []));
    const held = new Map<string, number>();
    for (const value of got) if (value !== undefined) held.set(value, (held.get(value) ?? 0) + 1);
    const rejected = results.filter((r) => r === undefined || r.value === undefined).length;
    const consistent =
      rejected === 0 &&
      values.size === 1 &&
      last?.value !== undefined &&
      values.has(last.value) &&
      last.executions.length === 0;
    const settledAt = results.map((r) => r?.settledAt ?? Number.NaN);
    if (all.length !== 1 || !consistent)
      ctx.violation(
        'S6',
        peer,
        rep,
        `fn ran ${all.length} times (${overlapped} overlapping); ` +
          (consistent ? 'one value' : `${values.size} values, ${rejected} of ${n} calls rejected`),
      );
    return {
      processes: n,
      starts: begun,
      executions: all.length,
      overlapped,
      wastedBusyMs: after.reduce((sum, e) => sum + e.busyMs, 0),
      wastedCpuMs: after.reduce((sum, e) => sum + e.cpuMs, 0),
      values: values.size,
      split: [...held.values()].sort((a, b) => b - a),
      keptBy: last?.value === undefined ? 0 : (held.get(last.value) ?? 0),
      rejected,
      errors: dedupe(errors),
      later: last && { value: last.value, error: last.error, executions: last.executions.length },
      consistent,
      allValuesMs: rejected ? Number.NaN : Math.max(...settledAt) - start,
      settledMs: Math.max(...settledAt) - start,
      spans: all.map(([process, e]) => ({
        process,
        from: e.startedAt - start,
        to: e.endedAt - start,
        busyMs: e.busyMs,
        cpuMs: e.cpuMs,
      })),
      failures: dedupe(failed),
    };
  }
}
