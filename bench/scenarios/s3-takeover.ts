import type { Shape } from '../config.js';
import type { PeerId } from '../peers/peer.js';
import { ms } from '../report/format.js';
import type { Context } from './context.js';
import { type FanoutOutcome, runFanout } from './fanout.js';

export interface S3Result {
  shape: Shape;
  fnMs: number;
  leaseMs: number;
  killAfterMs: number;
  runs: Partial<Record<PeerId, FanoutOutcome[]>>;
}

/**
 * S3 takeover: the process whose fn starts first is SIGKILLed 200 ms into a 2 s fn (lease 2 s). We
 * time kill → the next fn start anywhere, and count completed executions in Redis: more than one is
 * a violation (a second run of an init that was still running), recorded, not a crash of the bench.
 *
 * The repetitions of one peer run side by side, each its own cluster on its own key: a takeover is
 * paced by timers (the lease), not by CPU, and this keeps the full bench within its five minutes.
 */
export async function s3Takeover(ctx: Context): Promise<S3Result> {
  const { shape, fnMs, leaseMs, killAfterMs } = ctx.config.s3;
  const result: S3Result = { shape, fnMs, leaseMs, killAfterMs, runs: {} };
  for (const peer of ctx.config.peers) {
    await ctx.server.flush();
    const reps = Array.from({ length: ctx.config.reps }, (_, i) => i + 1);
    const outcomes = await Promise.all(
      reps.map(() =>
        runFanout(ctx.server, ctx.pool, {
          peer,
          ...shape,
          fnMs,
          leaseMs,
          killLeaderAfterMs: killAfterMs,
          timeoutMs: 20_000,
          flush: false,
        }),
      ),
    );
    result.runs[peer] = outcomes;
    outcomes.forEach((outcome, i) => {
      outcome.latencies = [];
      if (outcome.violation)
        ctx.violation({ scenario: 'S3 takeover', peer, rep: i + 1, detail: outcome.violation });
      ctx.progress(
        `S3 rep ${i + 1} ${peer.padEnd(14)} takeover ${ms(outcome.takeoverMs)} starts ${outcome.starts} ` +
          `completions ${outcome.completions}${outcome.failures.length ? ` FAILURES ${outcome.failures.join('; ')}` : ''}`,
      );
    });
  }
  return result;
}
