import { AsyncLocalStorage } from 'node:async_hooks';
import createDebug from 'debug';
import {
  AttemptFailure,
  Coordinator,
  type FlightResult,
  type OnceContext,
  type Role,
} from './coordinator.js';
import type { ErrorSummary } from './errors.js';
import {
  LeaseLostError,
  OnceAbortError,
  OnceBusyError,
  OnceClosedError,
  OnceInputError,
  OnceReentrantError,
  OnceTimeoutError,
} from './errors.js';
import { controlChannel, type KeyNames, keyNames } from './keys.js';
import { Leases } from './lease.js';
import { type Flight, Memo } from './memo.js';
import {
  checkFn,
  checkKey,
  type OnceOptions,
  type ResolvedOptions,
  type ResolvedRun,
  type RunOptions,
  resolveOptions,
  resolveRunOptions,
} from './options.js';
import { RedisNode } from './redis-node.js';
import { Store } from './store.js';
import { decodeValue } from './value.js';
import { listenOnMajority, Subscriber } from './waiter.js';

const debug = createDebug('redis-once:once');

/** What `runDetailed` resolves with. */
export interface RunResult<T> {
  value: T;
  /**
   * `leader`: this caller's fn ran and its value was recorded. `follower`: this caller waited for a
   * run elsewhere (another process, or another caller's fn in this process). `cached`: the key was
   * already done (answered from memory, or from one read).
   */
  role: Role;
  /** The fencing token of the attempt that produced the value. */
  fencingToken: number;
  /** The attempt number that produced the value. */
  attempt: number;
  /** Milliseconds this caller waited, from call to value. */
  waitedMs: number;
}

/** What `status` resolves with. Absent fields are unknown or do not apply. */
export interface OnceStatus {
  /**
   * `idle`: never run, reset, or expired. `running`: a leader holds the lease. `done`: the value is
   * recorded. `failed`: the last attempt failed, or its leader stopped renewing its lease (crashed).
   */
  state: 'idle' | 'running' | 'done' | 'failed';
  owner?: string;
  fencingToken?: number;
  /** Attempts begun cluster-wide since the last reset. */
  attempts: number;
  /** Epoch milliseconds (Redis clock). */
  startedAt?: number;
  finishedAt?: number;
  /** The stored value, parsed (when done). */
  value?: unknown;
  /** The last attempt's error (when failed). */
  error?: ErrorSummary;
}

export type OnceFn<T> = (ctx: OnceContext) => T | Promise<T>;

export interface Once {
  /**
   * Runs `fn` once for `key` across every process sharing the Redis, and resolves with its value on
   * every caller, everywhere.
   *
   * - Concurrent callers share one run: exactly one caller cluster-wide runs fn; no call resolves
   *   before that run's value is recorded. In one process, concurrent calls share one coordination.
   * - After the key is done, calls resolve with the stored value without running fn; in a process that
   *   has seen it, with no Redis I/O at all.
   * - If fn throws, this call rejects with fn's error, the attempt is recorded cluster-wide, and
   *   another caller takes over while attempts remain (`maxAttempts`); once they are spent, every call
   *   rejects with OnceFailedError until `reset(key)`. A failure is never remembered in memory.
   * - If this process loses the lease while fn runs (Redis unreachable, process paused), `ctx.signal`
   *   aborts and this call rejects with LeaseLostError; the value is not recorded.
   * - `waitTimeoutMs` and `signal` end only this caller's wait (OnceTimeoutError, AbortError).
   * - Re-entry: `run(key)` from inside fn for the same key would wait for itself; it rejects with
   *   OnceReentrantError instead.
   */
  run<T>(key: string, fn: OnceFn<T>, options?: RunOptions): Promise<T>;
  /** As `run`, and also says how the value was obtained. */
  runDetailed<T>(key: string, fn: OnceFn<T>, options?: RunOptions): Promise<RunResult<T>>;
  /** `() => run(key, fn, options)`, with the key and fn checked now. */
  wrap<T>(key: string, fn: OnceFn<T>, options?: RunOptions): () => Promise<T>;
  /** The key's state in Redis. */
  status(key: string): Promise<OnceStatus>;
  /**
   * Forgets the key's state, cluster-wide, so the next run runs fn again; every live process drops its
   * memory of it within moments. Rejects with OnceBusyError while a leader holds the lease, unless
   * `force` (the leader then loses its lease). Fencing tokens keep rising across resets.
   */
  reset(key: string, options?: { force?: boolean }): Promise<{ existed: boolean }>;
  /**
   * Ends timers, subscriptions and the connections this instance opened (never a client you passed
   * in). Waiting calls reject with OnceClosedError; a running fn's `ctx.signal` aborts and its attempt
   * is recorded as failed, so another node can take over at once.
   */
  close(): Promise<void>;
}

/** Creates a Once: the handle to run initializations exactly once across processes. */
export function createOnce(options: OnceOptions): Once {
  return new OnceInstance(resolveOptions(options));
}

class OnceInstance implements Once {
  private readonly nodes: RedisNode[];
  private readonly subscribers: Subscriber[];
  private readonly store: Store;
  private readonly coordinator: Coordinator;
  private readonly memo: Memo<FlightResult>;
  private readonly running = new AsyncLocalStorage<ReadonlySet<string>>();
  private readonly closing = new AbortController();
  /** Every caller waiting on a flight: close() rejects them. */
  private readonly waiting = new Set<() => void>();
  private readonly sharded: boolean;
  private control: Promise<void> | undefined;
  private closed: Promise<void> | undefined;

  constructor(private readonly options: ResolvedOptions) {
    const quorum = options.specs.length > 1;
    this.nodes = options.specs.map((spec) => new RedisNode(spec, options.redisTimeoutMs, quorum));
    this.subscribers = this.nodes.map((node) => new Subscriber(node, options.redisTimeoutMs));
    // A Cluster routes a key's completion channel to the key's shard with sharded pub/sub.
    this.sharded = this.nodes.some((node) => node.isCluster);
    const store = new Store(this.nodes, this.sharded ? 'SPUBLISH' : 'PUBLISH', options.replicaAck);
    this.coordinator = new Coordinator({
      store,
      leases: new Leases(this.nodes, options.redisTimeoutMs),
      subscribers: this.subscribers,
      nodeId: options.nodeId,
      sharded: this.sharded,
      running: this.running,
    });
    this.store = store;
    this.memo = new Memo(options.memoMaxKeys);
    // Listen for resets from the start, so a process's first run need not wait for it. A failure here
    // is retried (and reported) by the first call that needs it.
    this.listenForResets().catch(() => {});
  }

  async run<T>(key: string, fn: OnceFn<T>, options?: RunOptions): Promise<T> {
    // The cached path: no Redis, no timers, no allocation beyond the promise.
    if (options === undefined && typeof fn === 'function') {
      const hit = this.memo.get(key);
      if (hit) return hit.value as T;
    }
    return (await this.runDetailed(key, fn, options)).value;
  }

  async runDetailed<T>(key: string, fn: OnceFn<T>, options?: RunOptions): Promise<RunResult<T>> {
    checkFn(fn);
    checkKey(key);
    const run = resolveRunOptions(options, this.options);
    const started = performance.now();
    const deadline = started + run.waitTimeoutMs;
    for (;;) {
      if (run.signal?.aborted) throw new OnceAbortError({ key, cause: run.signal.reason });
      const hit = this.memo.get(key);
      if (hit) return detailed<T>(hit, 'cached', started);
      if (this.closing.signal.aborted) throw new OnceClosedError(key);
      if (this.running.getStore()?.has(key)) throw new OnceReentrantError(key);

      let mine = false;
      const flight = this.memo.join(
        key,
        (stop, started) => {
          mine = true;
          return this.fly(keyNames(this.options.namespace, key), fn, run, stop, started);
        },
        (result) => result.expiresAt,
      );
      try {
        const result = await this.waitFor(flight, key, mine, deadline, run);
        // Only the caller whose fn ran is the leader; others in this process waited for it.
        return detailed<T>(result, result.role === 'leader' && !mine ? 'follower' : result.role, started);
      } catch (error) {
        if (error instanceof AttemptFailure) {
          if (mine) throw error.error;
          continue; // fn failed for another caller here: take over, or learn the attempts are spent
        }
        if (error instanceof LeaseLostError && !mine) continue;
        throw error;
      }
    }
  }

  wrap<T>(key: string, fn: OnceFn<T>, options?: RunOptions): () => Promise<T> {
    checkFn(fn);
    checkKey(key);
    resolveRunOptions(options, this.options);
    return () => this.run(key, fn, options);
  }

  async status(key: string): Promise<OnceStatus> {
    checkKey(key);
    this.assertOpen(key);
    const { state, leasePttl } = await this.coordinator.read(keyNames(this.options.namespace, key));
    const leaseHeld = leasePttl > 0;
    const status: OnceStatus = { state: state.status, attempts: state.attempts };
    if (state.status === 'running' && !leaseHeld) {
      status.state = 'failed';
      status.error = {
        name: 'LeaseLostError',
        message: `the leader ${state.owner ?? ''} stopped renewing its lease (crashed, or paused)`.replace(
          '  ',
          ' ',
        ),
      };
    } else if (state.status === 'idle' && leaseHeld) {
      status.state = 'running'; // a leader holds the lease and is about to begin
    }
    if (state.owner !== undefined) status.owner = state.owner;
    if (state.token > 0) status.fencingToken = state.token;
    if (state.startedAt !== undefined) status.startedAt = state.startedAt;
    if (state.finishedAt !== undefined) status.finishedAt = state.finishedAt;
    if (state.status === 'done') status.value = decodeValue(state.valueJson);
    if (state.status === 'failed' && state.error) status.error = state.error;
    return status;
  }

  async reset(key: string, options?: { force?: boolean }): Promise<{ existed: boolean }> {
    checkKey(key);
    if (options !== undefined && (typeof options !== 'object' || options === null)) {
      throw new OnceInputError('reset: options must be an object such as { force: true }.');
    }
    const force = options?.force ?? false;
    if (typeof force !== 'boolean') throw new OnceInputError('reset: `force` must be a boolean.');
    this.assertOpen(key);
    const names = keyNames(this.options.namespace, key);
    const reply = await this.store.reset(names, {
      force,
      controlChannel: controlChannel(this.options.namespace),
    });
    if (!reply.ok) throw new OnceBusyError({ key, owner: reply.owner });
    this.memo.forget(key);
    return { existed: reply.existed };
  }

  close(): Promise<void> {
    this.closed ??= (async () => {
      const reason = new OnceClosedError();
      this.closing.abort(reason);
      for (const reject of [...this.waiting]) reject();
      this.memo.clear(reason);
      await this.coordinator.abandonAll('this Once instance was closed');
      await Promise.allSettled(this.subscribers.map((subscriber) => subscriber.close()));
      await Promise.allSettled(this.nodes.map((node) => node.close()));
      debug('closed');
    })();
    return this.closed;
  }

  /** One flight: make sure resets reach us, then coordinate. */
  private async fly(
    names: KeyNames,
    fn: OnceFn<unknown>,
    run: ResolvedRun,
    stop: AbortSignal,
    flight: Flight<FlightResult>,
  ): Promise<FlightResult> {
    await this.listenForResets();
    return this.coordinator.fly(names, fn, run, stop, () => flight.markLeading());
  }

  /**
   * Subscribes, once per instance, to the namespace's control channel, where `reset` announces keys.
   * It is confirmed before the first read, so no reset can fall between a read and our listening.
   */
  private listenForResets(): Promise<void> {
    this.control ??= (async () => {
      const channel = controlChannel(this.options.namespace);
      await listenOnMajority(this.subscribers, channel, (key) => this.memo.forget(key), false);
      // Resets published while a control connection was down never reached us: forget what we
      // remember once it is back, and ask Redis again (one read per key).
      for (const subscriber of this.subscribers) {
        subscriber.onReconnect((event) => {
          if (event === 'back') this.memo.forgetDone();
        });
      }
    })().catch((error: unknown) => {
      this.control = undefined; // try again on the next call
      throw error;
    });
    return this.control;
  }

  /** This caller's wait for a flight: bounded by its own deadline and signal, and by close(). */
  private waitFor(
    flight: Flight<FlightResult>,
    key: string,
    mine: boolean,
    deadline: number,
    run: ResolvedRun,
  ): Promise<FlightResult> {
    const detach = flight.attach();
    return new Promise<FlightResult>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = (settle: () => void) => {
        clearTimeout(timer);
        run.signal?.removeEventListener('abort', onAbort);
        this.waiting.delete(onClose);
        detach();
        settle();
      };
      const onAbort = () => finish(() => reject(new OnceAbortError({ key, cause: run.signal?.reason })));
      const onClose = () => finish(() => reject(new OnceClosedError(key)));
      const onTimeout = () =>
        finish(() =>
          reject(
            new OnceTimeoutError(
              `Waited ${run.waitTimeoutMs} ms for "${key}" to be done elsewhere (waitTimeoutMs); it is still ` +
                'running or waiting for a takeover. The work goes on; raise waitTimeoutMs to wait longer.',
              { key, timeoutMs: run.waitTimeoutMs },
            ),
          ),
        );
      timer = setTimeout(onTimeout, Math.max(0, deadline - performance.now()));
      // The caller whose fn is running is not cut off by a wait timeout: it is not waiting for anyone.
      if (mine) flight.onLeading(() => clearTimeout(timer));
      run.signal?.addEventListener('abort', onAbort, { once: true });
      // A Set, not a listener on one shared AbortSignal: thousands of callers may wait at once, and
      // adding and removing EventTarget listeners costs time in proportion to those already there.
      this.waiting.add(onClose);
      flight.promise.then(
        (result) => finish(() => resolve(result)),
        (error: unknown) => finish(() => reject(error)),
      );
    });
  }

  private assertOpen(key: string): void {
    if (this.closing.signal.aborted) throw new OnceClosedError(key);
  }
}

function detailed<T>(result: FlightResult, role: Role, started: number): RunResult<T> {
  return {
    value: result.value as T,
    role,
    fencingToken: result.fencingToken,
    attempt: result.attempt,
    waitedMs: performance.now() - started,
  };
}
