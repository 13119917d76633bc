import type { PeerId } from '../peers/peer.js';
import type { ThroughputResult } from '../protocol.js';
import { type Context, record } from './context.js';
import { dedupe } from './fanout.js';

export interface ThroughputRep {
  keysPerSec: number;
  wrongRuns: number;
  failures: string[];
}

export interface S5Result {
  keys: number;
  concurrency: number;
  runs: Partial<Record<PeerId, ThroughputRep[]>>;
}

/**
 * S5 throughput: one process initialises `keys` distinct keys with a trivial fn, `concurrency` at a
 * time. It prices the whole protocol of a key (read, lease, begin, complete) with nothing to wait for.
 */
export async function s5Throughput(ctx: Context): Promise<S5Result> {
  const { keys, concurrency } = ctx.config.s5;
  const result: S5Result = { keys, concurrency, runs: {} };
  let run = 0;
  for (let rep = 1; rep <= ctx.config.reps; rep++) {
    for (const peer of ctx.config.peers) {
      await ctx.server.flush();
      const [worker] = await ctx.pool.take(1);
      let clean = true;
      try {
        const options = { redisUrl: ctx.server.url, leaseMs: 30_000, namespace: `s5-${++run}` };
        await worker!.prepare({ kind: 'throughput', peer, options, keyPrefix: 'tenant', keys, concurrency });
        const outcome = (await worker!.go(120_000)) as ThroughputResult;
        await worker!.release();
        const keysPerSec = (outcome.keys / outcome.elapsedMs) * 1000;
        record(result.runs, peer, {
          keysPerSec,
          wrongRuns: outcome.wrongRuns,
          failures: dedupe(outcome.failures),
        });
        if (outcome.wrongRuns > 0)
          ctx.violation({
            scenario: 'S5 throughput',
            peer,
            rep,
            detail: `${outcome.wrongRuns} keys whose fn did not run exactly once`,
          });
        ctx.progress(
          `S5 rep ${rep} ${peer.padEnd(14)} ${Math.round(keysPerSec).toLocaleString('en-US')} keys/s`,
        );
      } catch (error) {
        clean = false;
        record(result.runs, peer, { keysPerSec: Number.NaN, wrongRuns: 0, failures: [String(error)] });
      } finally {
        ctx.pool.give([worker!], clean);
      }
    }
  }
  return result;
}
