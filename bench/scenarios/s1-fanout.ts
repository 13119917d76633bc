import type { Shape } from '../config.js';
import type { PeerId } from '../peers/peer.js';
import { ms } from '../report/format.js';
import { type Context, record } from './context.js';
import { type FanoutOutcome, runFanout } from './fanout.js';

export interface S1Shape extends Shape {
  callers: number;
  runs: Partial<Record<PeerId, FanoutOutcome[]>>;
}

export interface S1Result {
  fnMs: number;
  leaseMs: number;
  shapes: S1Shape[];
}

/**
 * S1 fan-out: P processes × C callers of one key; fn takes 500 ms. Release latency is how long each
 * caller still waited once the value existed: caller resolved − fn finished on the leader. Peers are
 * interleaved within each repetition, so a slow moment of the machine is not pinned on one library.
 */
export async function s1Fanout(ctx: Context): Promise<S1Result> {
  const { fnMs, leaseMs, shapes, reps } = ctx.config.s1;
  const result: S1Result = { fnMs, leaseMs, shapes: [] };
  for (const shape of shapes) {
    const entry: S1Shape = { ...shape, callers: shape.processes * shape.callersPerProcess, runs: {} };
    result.shapes.push(entry);
    for (let rep = 1; rep <= reps; rep++) {
      for (const peer of ctx.config.peers) {
        const outcome = await runFanout(ctx.server, ctx.pool, {
          peer,
          ...shape,
          fnMs,
          leaseMs,
          timeoutMs: 60_000,
        });
        record(entry.runs, peer, outcome);
        if (outcome.violation)
          ctx.violation({ scenario: `S1 ${entry.callers}`, peer, rep, detail: outcome.violation });
        ctx.progress(
          `S1 ${shape.processes}×${shape.callersPerProcess} rep ${rep} ${peer.padEnd(14)} p50 ${ms(outcome.p50)} ` +
            `p99 ${ms(outcome.p99)} max ${ms(outcome.max)} commands ${outcome.commands}` +
            `${outcome.failures.length ? ` FAILURES ${outcome.failures.join('; ')}` : ''}`,
        );
      }
    }
  }
  return result;
}
