import type { Context } from './context.js';
import { runFanout } from './fanout.js';

/**
 * One unmeasured run per library before S1: it loads each library's Lua scripts into this fresh
 * redis-server (a server that has been up for a while has them; the first EVALSHA on a new server
 * costs a NOSCRIPT round trip) and compiles each library's code in every worker.
 */
export async function warmUp(ctx: Context): Promise<void> {
  const processes = Math.max(...ctx.config.s1.shapes.map((shape) => shape.processes));
  for (const peer of ctx.config.peers) {
    await runFanout(ctx.server, ctx.pool, {
      peer,
      processes,
      callersPerProcess: 2,
      fnMs: 20,
      leaseMs: ctx.config.s1.leaseMs,
      timeoutMs: 30_000,
    });
  }
  ctx.progress('warm-up done: every library has run once in every worker');
}
