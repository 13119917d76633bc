/**
 * The leader thread's side of the standby renewer (thread.ts): one worker thread per Once instance,
 * started when the instance first leads and ended when it has led nothing for a while (or closes), so a
 * process that never leads pays nothing and a burst of leads shares one thread.
 *
 * While any lease is watched, a heartbeat timer on this thread writes its sign of life to shared memory
 * (cell.ts), which the thread's rule reads (decision.ts).
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import createDebug from 'debug';
import type { RedisSpec } from '../drivers/index.js';
import type { KeyNames } from '../keys.js';
import type { OnceLogger } from '../options.js';
import { beat, CellPool, endCell, generationOf, newCell, newHeartbeat, STOPPED } from './cell.js';
import { type RenewerConnection, renewerConnection } from './connection.js';
import type { ThreadConfig, ToMain, ToThread } from './messages.js';
import { append, newRing } from './ring.js';

const debug = createDebug('redis-once:renewer');

/** How often this thread shows it is alive while the standby's thread runs. */
const BEAT_MS = 100;
/**
 * Cells in the pool (40 bytes each): enough for a process leading some hundred thousand short keys a
 * second; a lead that finds none free gets a cell of its own, sent with a message.
 */
const POOL_CELLS = 65_536;
/**
 * How long a freed cell rests before another lease takes it (cell.ts, CellPool): far longer than the
 * thread can be held between checking a cell's generation and writing to it.
 */
const CELL_QUARANTINE_MS = 250;
/** The ring of leases recorded for the thread (ring.ts): thousands of records between two drains. */
const RING_BYTES = 1 << 20;
/** The thread stays this long after its last lease, for the next lead of a burst. */
const LINGER_MS = 10_000;

/** A lease the standby renewer watches: its cell, and how to stop watching. */
export interface Standby {
  readonly cell: BigInt64Array;
  /** Never renew this lease again (fn settled, the lease was lost, or the instance is closing). */
  stop(): void;
}

export interface StandbyOptions {
  connections: RenewerConnection[];
  redisTimeoutMs: number;
  maxStallMs: number;
  logger: OnceLogger | undefined;
}

/**
 * The instance's standby renewer, or undefined: with maxStallMs 0, or when the connection cannot be
 * handed to a thread (said once through the logger: leases then renew on the main thread alone).
 */
export function standbyRenewer(
  specs: readonly RedisSpec[],
  options: Omit<StandbyOptions, 'connections'>,
): StandbyRenewer | undefined {
  if (options.maxStallMs === 0) return undefined;
  const connections: RenewerConnection[] = [];
  for (const spec of specs) {
    const derived = renewerConnection(spec);
    if ('unsupported' in derived) {
      options.logger?.warn(
        { event: 'renewer-unavailable', reason: derived.unsupported },
        `redis-once: no standby renewer for ${derived.unsupported}; leases renew on the main thread only (maxStallMs does not apply)`,
      );
      debug('no standby renewer: %s', derived.unsupported);
      return undefined;
    }
    connections.push(derived.connection);
  }
  return new StandbyRenewer({ ...options, connections });
}

export class StandbyRenewer {
  private worker: Worker | undefined;
  private readonly heartbeat = newHeartbeat();
  private readonly pool = new CellPool(POOL_CELLS, CELL_QUARANTINE_MS);
  private readonly ring = newRing(RING_BYTES);
  /** When the last watch ended: the thread ends LINGER_MS after it, if nothing was watched since. */
  private idleSince = 0;
  private beatTimer: NodeJS.Timeout | undefined;
  private lingerTimer: NodeJS.Timeout | undefined;
  /** The leases watched now, each with what to do if the thread finds it refused. */
  private readonly watches = new Map<number, () => void>();
  private nextId = 0;
  private broken = false;
  private closed = false;
  /** Settles once the thread's connections are up (or it failed): see `whenReady`. */
  private ready: Promise<void> = Promise.resolve();

  constructor(private readonly options: StandbyOptions) {}

  /**
   * Watches a lease from now on (fn is about to run). `onRefused` runs, on this thread, if the renewer
   * finds the lease is not ours; undefined when no renewer can run (closed, or its thread failed).
   */
  watch(
    names: KeyNames,
    leaseValue: string,
    leaseMs: number,
    provenSentAt: number,
    onRefused: () => void,
  ): Standby | undefined {
    if (this.closed || this.broken) return undefined;
    let worker: Worker;
    try {
      worker = this.start();
    } catch (error) {
      // No thread file here (a bundle that left it out, say): as with maxStallMs 0.
      this.broken = true;
      this.warnFailed(error as Error);
      return undefined;
    }
    const { slot, generation, cell } = this.pool.take(provenSentAt) ?? ownCell(provenSentAt);
    const id = ++this.nextId;
    this.watches.set(id, onRefused);
    const record = { id, slot, generation, leaseMs, key: names.key, leaseKey: names.lease, leaseValue };
    if (slot === undefined || !append(this.ring, { ...record, slot })) {
      const message: ToThread = [id, slot ?? cell, generation, names.key, names.lease, leaseValue, leaseMs];
      worker.postMessage(message);
    }
    let stopped = false;
    return {
      cell,
      stop: () => {
        if (stopped) return;
        stopped = true;
        // The thread drops the watch when it sees the cell stopped: no message for it.
        endCell(cell, STOPPED);
        if (slot !== undefined) this.pool.give(slot);
        this.watches.delete(id);
        if (this.watches.size === 0) this.idle();
      },
    };
  }

  /** Settles once the thread is up and connected, or could not be (for tests and figures). */
  whenReady(): Promise<void> {
    return this.ready;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stopBeating();
    clearTimeout(this.lingerTimer);
    const worker = this.worker;
    this.worker = undefined;
    if (worker) await worker.terminate();
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const config: ThreadConfig = {
      connections: this.options.connections,
      redisTimeoutMs: this.options.redisTimeoutMs,
      heartbeat: this.heartbeat,
      cells: this.pool.memory,
      ring: this.ring,
      beatMs: BEAT_MS,
      maxStallMs: this.options.maxStallMs,
    };
    const startedAt = performance.now();
    const worker = startThread(config);
    let ready!: () => void;
    this.ready = new Promise((resolve) => (ready = resolve));
    // Never what keeps a process alive: the leases it watches keep their own timers here.
    worker.unref();
    worker.on('message', (message: ToMain) => {
      if (message.type === 'refused') this.watches.get(message.id)?.();
      else if (message.type === 'ready') {
        debug('standby renewer ready in %d ms', Math.round(performance.now() - startedAt));
        ready();
      }
    });
    worker.on('error', (error) => {
      ready();
      this.fail(worker, error);
    });
    worker.on('exit', (code) => {
      ready();
      if (this.worker === worker && !this.closed) this.fail(worker, new Error(`exited with code ${code}`));
    });
    this.worker = worker;
    this.startBeating();
    debug('standby renewer started');
    return worker;
  }

  /** The thread is gone: leases go on renewing on this thread alone, as with maxStallMs 0. */
  private fail(worker: Worker, error: Error): void {
    if (this.worker !== worker) return;
    this.worker = undefined;
    this.broken = true;
    this.stopBeating();
    this.warnFailed(error);
  }

  private warnFailed(error: Error): void {
    this.options.logger?.warn(
      { event: 'renewer-failed', error: error.message },
      'redis-once: the standby renewer thread failed; leases renew on the main thread only (a long synchronous fn may lose its lease)',
    );
    debug('standby renewer failed: %s', error.message);
  }

  /**
   * Nothing watched now: the thread ends LINGER_MS later unless a lead comes first. One timer for the
   * whole idle time, not one per lead: a burst of short leads arms it once.
   */
  private idle(): void {
    this.idleSince = performance.now();
    if (this.closed || this.lingerTimer) return;
    const check = () => {
      this.lingerTimer = undefined;
      if (this.closed || this.watches.size > 0) return;
      const left = this.idleSince + LINGER_MS - performance.now();
      if (left > 0) {
        this.lingerTimer = setTimeout(check, left);
        this.lingerTimer.unref();
        return;
      }
      const worker = this.worker;
      this.worker = undefined;
      this.stopBeating();
      if (worker) void worker.terminate();
      debug('standby renewer ended (idle)');
    };
    this.lingerTimer = setTimeout(check, LINGER_MS);
    this.lingerTimer.unref();
  }

  private startBeating(): void {
    beat(this.heartbeat);
    if (this.beatTimer) return;
    this.beatTimer = setInterval(() => beat(this.heartbeat), BEAT_MS);
    this.beatTimer.unref();
  }

  private stopBeating(): void {
    clearInterval(this.beatTimer);
    this.beatTimer = undefined;
  }
}

/** A cell outside the pool (every pooled one is taken or resting), sent to the thread with its lease. */
function ownCell(provenSentAt: number): { slot: undefined; generation: number; cell: BigInt64Array } {
  const cell = newCell(provenSentAt);
  return { slot: undefined, generation: generationOf(cell), cell };
}

/**
 * The thread: the built file beside this bundle, or, when redis-once runs from its sources (its own
 * tests), the TypeScript file, through the loaders the tests use (registered in the thread itself:
 * Node 20 does not pass `--import` hooks on to a worker).
 */
function startThread(config: ThreadConfig): Worker {
  const here = import.meta.url;
  if (typeof here !== 'string') throw new Error('no module URL to find the renewer thread by');
  if (!here.endsWith('.ts')) return new Worker(new URL('./renewer-thread.js', here), { workerData: config });
  // tsx's ESM entry (its CommonJS one cannot register hooks from a worker).
  const tsx = createRequire(here)
    .resolve('tsx/esm/api')
    .replace(/\.cjs$/, '.mjs');
  const lua = new URL('../../scripts/register-lua.mjs', here).href;
  const thread = new URL('./thread.ts', here).href;
  const boot = `import(${JSON.stringify(pathToFileURL(tsx).href)})
    .then(({ register }) => register())
    .then(() => import(${JSON.stringify(lua)}))
    .then(() => import(${JSON.stringify(thread)}))`;
  return new Worker(boot, { eval: true, workerData: config });
}
