import createDebug from 'debug';
import { ControlChannel } from './control.js';
import { Coordinator } from './coordinator.js';
import { lastError, phaseOf } from './decide.js';
import {
  type CallContext,
  publish,
  runChannel,
  type TracingChannel,
  traceCall,
  traced,
  tracedFn,
  traceparentOf,
  waitChannel,
} from './diagnostics.js';
import type { Driver } from './drivers/driver.js';
import { openDriver } from './drivers/index.js';
import type { ErrorSummary } from './errors.js';
import {
  OnceAbortError,
  OnceBusyError,
  OnceClosedError,
  OnceInputError,
  OnceReentrantError,
} from './errors.js';
import { warnOfEviction } from './eviction.js';
import { type CallSettings, type DoneValue, Flight, type OnceFn, type RunResult } from './flight.js';
import { controlChannel, keyNames } from './keys.js';
import { Memo } from './memo.js';
import {
  checkFn,
  checkKey,
  type OnceOptions,
  type ResolvedOptions,
  type RunOptions,
  rejectUnknown,
  resolveOptions,
  resolveRunOptions,
  resolveWaitOptions,
  type WaitOptions,
} from './options.js';
import { QuorumStore } from './quorum/store.js';
import { isInside } from './reentry.js';
import { type StandbyRenewer, standbyRenewer } from './renewer/standby.js';
import { SingleStore } from './store/single.js';
import type { Store } from './store/store.js';
import { Subscriptions } from './subscriber.js';
import { decodeStoredValue } from './value.js';

const debug = createDebug('redis-once:once');

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
   * - If this process loses the lease while fn runs (Redis unreachable, process paused, a forced
   *   reset), `ctx.signal` aborts and this call rejects with LeaseLostError; the value is not recorded.
   * - `waitTimeoutMs` and `signal` bound this call until its fn starts (the claim included); they end
   *   only this caller's wait (OnceTimeoutError, AbortError), never the shared work.
   * - Re-entry: `run(key)` awaited from inside fn for the same key would wait for itself; it rejects
   *   with OnceReentrantError instead (detected along fn's await chain).
   */
  run<T>(key: string, fn: OnceFn<T>, options?: RunOptions): Promise<T>;
  /** As `run`, and also says how the value was obtained. */
  runDetailed<T>(key: string, fn: OnceFn<T>, options?: RunOptions): Promise<RunResult<T>>;
  /** `() => run(key, fn, options)`, with the key and fn checked now. */
  wrap<T>(key: string, fn: OnceFn<T>, options?: RunOptions): () => Promise<T>;
  /**
   * Resolves with the value once `key` is done — here, elsewhere, or before — and never runs anything.
   * It waits while the key is idle or running; it rejects with OnceFailedError when the key's attempts
   * (the instance's `maxAttempts`) are spent, and with OnceTimeoutError past `waitTimeoutMs`.
   */
  wait<T = unknown>(key: string, options?: WaitOptions): Promise<T>;
  /** The key's state in Redis. */
  status(key: string): Promise<OnceStatus>;
  /**
   * Forgets the key's state, cluster-wide, so the next run runs fn again from attempt 1; every live
   * process drops its memory of it within moments. Rejects with OnceBusyError while a leader holds the
   * lease, unless `force`: the leader's `ctx.signal` then aborts within moments. Tokens keep rising.
   */
  reset(key: string, options?: { force?: boolean }): Promise<{ existed: boolean }>;
  /**
   * Ends timers, subscriptions and the connections this instance opened (never a client you passed
   * in). Waiting calls reject with OnceClosedError. A running fn's `ctx.signal` aborts; its attempt is
   * recorded as failed and its lease released once fn settles — or, if fn ignores the signal, the lease
   * is left to expire — so no other node starts while fn may still run. Resolves after that.
   */
  close(): Promise<void>;
}

/** Creates a Once: the handle to run initializations exactly once across processes. */
export function createOnce(options: OnceOptions): Once {
  return new OnceInstance(resolveOptions(options));
}

const RESET_OPTIONS = new Set(['force']);

class OnceInstance implements Once {
  private readonly drivers: Driver[];
  private readonly subscriptions: Subscriptions[];
  private readonly store: Store;
  private readonly memo: Memo<DoneValue>;
  private readonly standby: StandbyRenewer | undefined;
  private readonly control: ControlChannel;
  private readonly coordinator: Coordinator;
  /** Coordinations in progress, for close(). */
  private readonly flying = new Set<Promise<void>>();
  private closing = false;
  private closed: Promise<void> | undefined;

  constructor(private readonly options: ResolvedOptions) {
    const { redisTimeoutMs } = options;
    this.drivers = options.specs.map((spec) => openDriver(spec, redisTimeoutMs));
    this.subscriptions = this.drivers.map((driver) => new Subscriptions(driver, redisTimeoutMs));
    this.store =
      this.drivers.length > 1
        ? new QuorumStore(this.drivers)
        : new SingleStore(this.drivers[0]!, options.replicaAck);
    this.memo = new Memo(options.memoMaxKeys);
    this.standby = standbyRenewer(options.specs, {
      redisTimeoutMs,
      maxStallMs: options.maxStallMs,
      logger: options.logger,
    });
    this.control = new ControlChannel(this.subscriptions, controlChannel(options.namespace), {
      reset: ({ key, fence }) => {
        this.memo.forget(key);
        if (fence !== undefined) this.coordinator.onReset(key, fence);
      },
      deaf: () => this.memo.lose(),
      listening: () => this.memo.regain(),
    });
    this.coordinator = new Coordinator({
      store: this.store,
      subscriptions: this.subscriptions,
      sharded: this.drivers.length === 1 && this.drivers[0]!.isCluster,
      nodeId: options.nodeId,
      namespace: options.namespace,
      redisTimeoutMs,
      maxAttempts: options.maxAttempts,
      standby: this.standby,
    });
    // Listen for resets from the start, so a process's first call need not wait for it. A failure here
    // is retried (and reported) by the first call that needs it.
    this.control.listen().catch(() => {});
    // Only for a caller who listens: no command is spent on it otherwise.
    if (options.logger) warnOfEviction(this.drivers, options.logger).catch(() => {});
  }

  run<T>(key: string, fn: OnceFn<T>, options?: RunOptions): Promise<T> {
    // No closure here: one would make every call allocate its context, the cached path included.
    if (traced(runChannel)) return this.tracedRun(key, fn, options).then(resultValue) as Promise<T>;
    // The cached path: no Redis, no timers, no allocation beyond the promise.
    if (options === undefined && typeof fn === 'function' && typeof key === 'string') {
      const hit = this.memo.get(key);
      if (hit) return Promise.resolve(hit.value as T);
    }
    return this.call(key, fn, options, false, undefined) as Promise<T>;
  }

  runDetailed<T>(key: string, fn: OnceFn<T>, options?: RunOptions): Promise<RunResult<T>> {
    if (traced(runChannel)) return this.tracedRun(key, fn, options) as Promise<RunResult<T>>;
    return this.call(key, fn, options, true, undefined) as Promise<RunResult<T>>;
  }

  /**
   * A run someone traces (diagnostics.ts): the detailed result, for the channel's context. A listener
   * may have bound fn to its own context (so fn's spans nest in the call's) and named its span, which
   * a leader stores with the value.
   */
  private tracedRun(key: string, fn: OnceFn, options: RunOptions | undefined): Promise<RunResult<unknown>> {
    return this.traced(runChannel, key, (context) =>
      this.call(key, tracedFn(context, fn), options, true, traceparentOf(context)),
    );
  }

  wrap<T>(key: string, fn: OnceFn<T>, options?: RunOptions): () => Promise<T> {
    checkFn(fn);
    checkKey(key);
    resolveRunOptions(options, this.options);
    return () => this.run(key, fn, options);
  }

  async wait<T = unknown>(key: string, options?: WaitOptions): Promise<T> {
    if (traced(waitChannel)) return (await this.tracedWait(key, options)).value as T;
    return (await this.waitFor(key, options, false)) as T;
  }

  private tracedWait(key: string, options: WaitOptions | undefined): Promise<RunResult<unknown>> {
    return this.traced(waitChannel, key, () => this.waitFor(key, options, true));
  }

  /** wait's body: never claims; resolves with the value (or, `detailed`, the RunResult). */
  private async waitFor(key: string, options: WaitOptions | undefined, detailed: boolean): Promise<unknown> {
    checkKey(key);
    const { waitTimeoutMs, signal } = resolveWaitOptions(options, this.options);
    const settings: CallSettings = {
      leaseMs: this.options.leaseMs,
      maxAttempts: this.options.maxAttempts,
      doneTtlMs: this.options.doneTtlMs,
    };
    return this.join(key, undefined, settings, waitTimeoutMs, signal, detailed, undefined);
  }

  /** One call under a tracing channel someone listens to (diagnostics.ts). */
  private traced(
    channel: TracingChannel,
    key: string,
    call: (context: CallContext) => Promise<unknown>,
  ): Promise<RunResult<unknown>> {
    return traceCall(
      channel,
      { key, namespace: this.options.namespace },
      call as (context: CallContext) => Promise<RunResult<unknown>>,
    );
  }

  async status(key: string): Promise<OnceStatus> {
    checkKey(key);
    this.assertOpen(key);
    const names = keyNames(this.options.namespace, key);
    const snapshot = await this.store.read(names);
    const { state } = snapshot;
    const phase = phaseOf(snapshot);
    const status: OnceStatus = {
      // A leader that stopped renewing (crashed) reads as failed until someone takes over.
      state: phase.kind === 'crashed' ? 'failed' : phase.kind,
      attempts: state.attempts,
    };
    if (state.owner !== undefined) status.owner = state.owner;
    if (state.token > 0) status.fencingToken = state.token;
    if (state.startedAt !== undefined) status.startedAt = state.startedAt;
    if (state.finishedAt !== undefined) status.finishedAt = state.finishedAt;
    if (phase.kind === 'done') status.value = decodeStoredValue(state.valueJson, key, names.state);
    const error = lastError(snapshot);
    if (error) status.error = error;
    return status;
  }

  async reset(key: string, options?: { force?: boolean }): Promise<{ existed: boolean }> {
    checkKey(key);
    if (options !== undefined && (typeof options !== 'object' || options === null)) {
      throw new OnceInputError('reset: options must be an object such as { force: true }.');
    }
    if (options) rejectUnknown(options, RESET_OPTIONS, 'reset');
    const force = options?.force ?? false;
    if (typeof force !== 'boolean') throw new OnceInputError('reset: `force` must be a boolean.');
    this.assertOpen(key);
    const reply = await this.store.reset(keyNames(this.options.namespace, key), {
      force,
      controlChannel: controlChannel(this.options.namespace),
    });
    if (!reply.ok) throw new OnceBusyError({ key, owner: reply.owner });
    publish('reset', { key, namespace: this.options.namespace, force, existed: reply.existed });
    // Our own control message follows; act on it now rather than in a moment.
    this.memo.forget(key);
    this.coordinator.onReset(key, reply.fence);
    return { existed: reply.existed };
  }

  close(): Promise<void> {
    this.closed ??= (async () => {
      this.closing = true;
      // Resets no longer reach a closed instance: its memory must not answer any more (calls reject).
      this.memo.lose();
      for (const flight of this.memo.inFlight()) flight.close();
      await this.coordinator.close();
      await this.standby?.close();
      await Promise.allSettled([...this.flying]);
      await this.store.drain();
      await Promise.allSettled(this.subscriptions.map((subscriptions) => subscriptions.close()));
      await Promise.allSettled(this.drivers.map((driver) => driver.close()));
      debug('closed');
    })();
    return this.closed;
  }

  /** Not async (one async frame less per call, on the path of every call): errors become rejections. */
  private call(
    key: string,
    fn: OnceFn,
    options: RunOptions | undefined,
    detailed: boolean,
    trace: string | undefined,
  ): Promise<unknown> {
    try {
      checkFn(fn);
      checkKey(key);
      const run = resolveRunOptions(options, this.options);
      return this.join(key, fn, run, run.waitTimeoutMs, run.signal, detailed, trace);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * This caller joins the key's flight (or starts it), unless memory already has the value. It throws
   * for bad state (closed, re-entry); `call` and `wait` turn that into a rejection.
   */
  private join(
    key: string,
    fn: OnceFn | undefined,
    settings: CallSettings,
    waitTimeoutMs: number,
    signal: AbortSignal | undefined,
    detailed: boolean,
    trace: string | undefined,
  ): Promise<unknown> {
    const started = performance.now();
    if (signal?.aborted) throw new OnceAbortError({ key, cause: signal.reason });
    const hit = this.memo.get(key);
    if (hit) {
      return Promise.resolve(
        detailed
          ? ({ ...hit, role: 'cached', waitedMs: performance.now() - started } satisfies RunResult<unknown>)
          : hit.value,
      );
    }
    this.assertOpen(key);
    let flight = this.memo.flight(key);
    // fn of this key runs here, and this call comes from inside it: it would wait for itself.
    if (flight?.leadFrame !== undefined && isInside(flight.leadFrame)) throw new OnceReentrantError(key);
    const fresh = flight === undefined || flight.stopped;
    if (fresh) {
      flight = new Flight(key);
      this.memo.add(flight);
    }
    const joined = flight!.join({ fn, settings, waitTimeoutMs, signal, started, detailed, trace });
    if (!fresh) return joined;
    const flying = this.fly(flight!);
    // Awaited together with the coordination, so that fn runs on this call's await chain (re-entry
    // detection across keys follows it, and only a promise with one consumer is followed); `joined`
    // always settles before the coordination ends.
    return Promise.race([joined, flying.then(() => joined)]);
  }

  /**
   * One coordination: once resets reach us (so memory can trust what it learns), the coordinator runs
   * the key's protocol; then the callers settle, and memory keeps the value while it holds in Redis.
   */
  private fly(flight: Flight): Promise<void> {
    const flying = this.coordinate(flight).finally(() => this.flying.delete(flying));
    this.flying.add(flying);
    return flying;
  }

  private async coordinate(flight: Flight): Promise<void> {
    try {
      await this.control.listen();
      flight.observedAt = this.memo.observe();
      const landing = await this.coordinator.fly(flight, keyNames(this.options.namespace, flight.key));
      if (landing) {
        this.memo.remember(flight.key, landing.done, landing.expiresAt, flight.observedAt);
        flight.succeed(landing.done, landing.by);
      }
    } catch (error) {
      flight.fail(error);
    } finally {
      this.memo.drop(flight);
    }
  }

  private assertOpen(key: string): void {
    if (this.closing) throw new OnceClosedError(key);
  }
}

function resultValue(result: RunResult<unknown>): unknown {
  return result.value;
}
