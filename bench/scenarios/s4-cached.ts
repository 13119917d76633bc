import { sleep } from '../clock.js';
import type { PeerId } from '../peers/peer.js';
import type { CachedResult, FreshResult, RequestCounts } from '../protocol.js';
import { type CommandCounts, delta, total } from '../server.js';
import type { WorkerProcess } from '../workers.js';
import { type Context, record } from './context.js';
import { dedupe } from './fanout.js';

export interface WarmRep {
  callsPerSec: number;
  calls: number;
  failures: string[];
}

export interface FreshRep {
  firstCallMs: number;
  /** Commands Redis executed for the first call (scripts' inner commands included). */
  commands: number;
  byCommand: CommandCounts;
  /** Requests the process sent, by kind; connection set-up (HELLO, CLIENT, INFO) included. */
  requests: number;
  requestsByKind: RequestCounts;
  /** Start-up: connecting the application's client and creating the library, before any call. */
  setupRequests: number;
  setupRequestsByKind: RequestCounts;
  setupCommands: number;
  failures: string[];
}

export interface S4Result {
  calls: number;
  warm: Partial<Record<PeerId, WarmRep[]>>;
  fresh: Partial<Record<PeerId, FreshRep[]>>;
}

function list(counts: RequestCounts): string {
  return Object.entries(counts)
    .map(([name, n]) => `${name} ${n}`)
    .join(', ');
}

/** Commands a new connection sends before it can be used (ioredis: HELLO 3, CLIENT SETINFO ×2, INFO). */
export const HANDSHAKE = new Set(['hello', 'client', 'info', 'select', 'auth']);

/**
 * S4 cached path. Warm: in one process whose key is done, `await initOnce(key, fn)` in a loop — for
 * redis-once that is `await once.run(key, fn)` answered from memory; every other peer asks Redis
 * each time, so their loop stops after a time cap. Fresh: a process that never called before makes
 * one call on the done key; we count what it sends and what Redis executes, for its start-up (the
 * application's client connecting, the library being created) and for the first call apart.
 */
export async function s4Cached(ctx: Context): Promise<S4Result> {
  const { calls, peerMaxMs } = ctx.config.s4;
  const result: S4Result = { calls, warm: {}, fresh: {} };
  // Fresh processes are started up front, all at once, so no measurement shares the CPU with a start.
  const fresh = new Map<string, Promise<WorkerProcess>>();
  for (let rep = 1; rep <= ctx.config.reps; rep++)
    for (const peer of ctx.config.peers) fresh.set(`${peer}/${rep}`, ctx.pool.fresh());
  await Promise.all(fresh.values());

  let run = 0;
  for (let rep = 1; rep <= ctx.config.reps; rep++) {
    for (const peer of ctx.config.peers) {
      await ctx.server.flush();
      const options = { redisUrl: ctx.server.url, leaseMs: 30_000, namespace: `s4-${++run}` };
      const key = 'config:warm';

      // Warm loop: the prepare step makes the key done (and runs fn once), go times the loop.
      const [worker] = await ctx.pool.take(1);
      let clean = true;
      try {
        await worker!.prepare({
          kind: 'cached',
          peer,
          options,
          key,
          calls,
          maxMs: peer === 'redis-once' ? 20_000 : peerMaxMs,
        });
        const warm = (await worker!.go(60_000)) as CachedResult;
        await worker!.release();
        const rate = (warm.calls / warm.elapsedMs) * 1000;
        record(result.warm, peer, {
          callsPerSec: rate,
          calls: warm.calls,
          failures: dedupe(warm.failures),
        });
        if (warm.fnRuns !== 0)
          ctx.violation({
            scenario: 'S4 warm',
            peer,
            rep,
            detail: `fn ran ${warm.fnRuns} more times after done`,
          });
        ctx.progress(
          `S4 warm rep ${rep} ${peer.padEnd(14)} ${Math.round(rate).toLocaleString('en-US')} calls/s`,
        );
      } catch (error) {
        clean = false;
        record(result.warm, peer, { callsPerSec: Number.NaN, calls: 0, failures: [String(error)] });
      } finally {
        ctx.pool.give([worker!], clean);
      }

      // Fresh process, in two parts: start-up (the application's client connects and the library is
      // created, then a pause such as any process has before its first call) and the first call.
      const newcomer = await fresh.get(`${peer}/${rep}`)!;
      try {
        const before = await ctx.server.commandstats();
        const setupRequests = await newcomer.prepare({ kind: 'fresh', peer, options, key });
        await sleep(100);
        const ready = await ctx.server.commandstats();
        const first = (await newcomer.go(30_000)) as FreshResult;
        await sleep(50);
        const after = await ctx.server.commandstats();
        const requestsByKind = await newcomer.release();
        const byCommand = delta(ready, after);
        const setupCommands = delta(before, ready);
        record(result.fresh, peer, {
          firstCallMs: first.firstCallMs,
          commands: total(byCommand),
          byCommand,
          requests: total(requestsByKind),
          requestsByKind,
          setupRequests: total(setupRequests),
          setupRequestsByKind: setupRequests,
          setupCommands: total(setupCommands),
          failures: dedupe(first.failures),
        });
        if (first.fnRuns !== 0)
          ctx.violation({
            scenario: 'S4 fresh',
            peer,
            rep,
            detail: `fn ran ${first.fnRuns} times on a done key`,
          });
        ctx.progress(
          `S4 fresh rep ${rep} ${peer.padEnd(14)} first call ${first.firstCallMs.toFixed(2)} ms, ` +
            `${total(requestsByKind)} requests (${list(requestsByKind)}), ${total(byCommand)} commands; ` +
            `start-up ${total(setupRequests)} requests (${list(setupRequests)})`,
        );
      } catch (error) {
        record(result.fresh, peer, {
          firstCallMs: Number.NaN,
          commands: Number.NaN,
          byCommand: {},
          requests: Number.NaN,
          requestsByKind: {},
          setupRequests: Number.NaN,
          setupRequestsByKind: {},
          setupCommands: Number.NaN,
          failures: [String(error)],
        });
      } finally {
        newcomer.kill();
      }
    }
  }
  return result;
}
