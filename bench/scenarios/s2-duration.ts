import type { Shape } from '../config.js';
import type { PeerId } from '../peers/peer.js';
import { ms } from '../report/format.js';
import type { Context } from './context.js';
import { type FanoutOutcome, runFanout } from './fanout.js';

export interface S2Result {
  shape: Shape;
  leaseMs: number;
  durations: number[];
  /** runs[peer][duration index] = one outcome per repetition. */
  runs: Partial<Record<PeerId, FanoutOutcome[][]>>;
}

/**
 * S2 cost vs duration: the same fan-out with fn taking 100 ms, 1 s, 3 s. A library that waits on a
 * message costs the same whatever fn takes (plus lease renewals, about one per third of a lease);
 * one that polls pays for every poll while fn runs.
 */
export async function s2Duration(ctx: Context): Promise<S2Result> {
  const { shape, leaseMs, durations, peers } = ctx.config.s2;
  const result: S2Result = { shape, leaseMs, durations, runs: {} };
  for (let rep = 1; rep <= ctx.config.reps; rep++) {
    for (const [i, fnMs] of durations.entries()) {
      for (const peer of peers) {
        const outcome = await runFanout(ctx.server, ctx.pool, {
          peer,
          ...shape,
          fnMs,
          leaseMs,
          timeoutMs: 60_000,
        });
        // Only the numbers S2 reports are kept; S1 keeps the latency distributions.
        outcome.latencies = [];
        const perDuration = result.runs[peer] ?? durations.map((): FanoutOutcome[] => []);
        result.runs[peer] = perDuration;
        perDuration[i]!.push(outcome);
        if (outcome.violation)
          ctx.violation({ scenario: `S2 ${ms(fnMs)}`, peer, rep, detail: outcome.violation });
        ctx.progress(
          `S2 fn ${ms(fnMs).padEnd(7)} rep ${rep} ${peer.padEnd(14)} commands ${outcome.commands} ` +
            `requests ${outcome.requests}${outcome.failures.length ? ` FAILURES ${outcome.failures.join('; ')}` : ''}`,
        );
      }
    }
  }
  return result;
}
