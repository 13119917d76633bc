import type { OnceContext } from './context.js';
import { OnceAbortError, OnceClosedError, OnceTimeoutError } from './errors.js';
import { delayUntil } from './timeout.js';

/** How a caller's value was obtained (`runDetailed().role`). */
export type Role = 'leader' | 'follower' | 'cached';

/** What `runDetailed` resolves with. */
export interface RunResult<T> {
  value: T;
  /**
   * `leader`: this caller's fn ran and its value was recorded. `follower`: this caller waited for a run
   * elsewhere (another process, or another caller's fn in this process). `cached`: the key was already
   * done (answered from memory, or from the first read).
   */
  role: Role;
  /** The fencing token of the attempt that produced the value. */
  fencingToken: number;
  /** The number of the attempt that produced the value. */
  attempt: number;
  /** Milliseconds this caller waited, from its call to its value. */
  waitedMs: number;
  /**
   * The W3C traceparent of the span the leader's call ran in, when the leader was traced (see
   * `redis-once/otel`): a follower's span links to it. Absent otherwise.
   */
  leaderTrace?: string;
}

/** A done key's value, as a flight ends with it and the memo keeps it. */
export interface DoneValue {
  readonly value: unknown;
  readonly fencingToken: number;
  readonly attempt: number;
  leaderTrace?: string;
}

export type OnceFn<T = unknown> = (ctx: OnceContext) => T | Promise<T>;

/** The per-call settings a flight acts on, from the caller whose fn it would run. */
export interface CallSettings {
  leaseMs: number;
  maxAttempts: number;
  doneTtlMs: number | undefined;
}

export interface CallerInit {
  /** The caller's fn; undefined for `wait()`, which never runs anything. */
  fn: OnceFn | undefined;
  settings: CallSettings;
  waitTimeoutMs: number;
  signal: AbortSignal | undefined;
  /** performance.now() at the call. */
  started: number;
  /** Resolve with a RunResult (runDetailed) rather than the bare value (run, wait). */
  detailed: boolean;
  /** The traceparent of the span a listener opened for this call (diagnostics.ts), if any. */
  trace: string | undefined;
}

interface Caller extends CallerInit {
  deadline: number;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  onAbort: (() => void) | undefined;
}

/**
 * One coordination of one key in this process, shared by every concurrent caller (run, runDetailed,
 * wrap and wait alike). Callers wait with one timer for the whole flight, armed at the earliest
 * deadline; each caller's timeout and signal end only its own wait. When every caller has left, the
 * flight stops (`stopped`), so a flight that is only waiting ends its wait, and a claim won after that
 * is given back before fn could start. A running fn is never stopped by callers leaving: the shared
 * work is not any one caller's to cancel.
 */
export class Flight {
  private callers: Caller[] = [];
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private stopListeners: Array<() => void> = [];
  /** Why the flight stopped: every caller left, it ended, or the instance closed. */
  private stopReason: 'left' | 'ended' | 'closed' | undefined;
  private runnerListener: (() => void) | undefined;
  /** Callers with an fn (not `wait`), so joining stays O(1). */
  private withFn = 0;
  /** The caller whose fn is running, while one is. */
  private runner: Caller | undefined;
  /** The memo epoch this flight observed from (`Memo.observe`), or -1. */
  observedAt = -1;
  /** While fn runs: the name of the async frame it runs in, for re-entry detection. */
  leadFrame: string | undefined;

  constructor(readonly key: string) {}

  /** Adds a caller; its promise settles when the flight ends, or when the caller's own wait ends. */
  join(init: CallerInit): Promise<unknown> {
    return new Promise((resolve, reject) => {
      // Spelled out, not spread: every call makes one, and one shape keeps it cheap.
      const caller: Caller = {
        fn: init.fn,
        settings: init.settings,
        waitTimeoutMs: init.waitTimeoutMs,
        signal: init.signal,
        started: init.started,
        detailed: init.detailed,
        trace: init.trace,
        deadline: init.started + init.waitTimeoutMs,
        resolve,
        reject,
        onAbort: undefined,
      };
      if (init.signal) {
        caller.onAbort = () =>
          this.leave(caller, new OnceAbortError({ key: this.key, cause: init.signal?.reason }));
        init.signal.addEventListener('abort', caller.onAbort, { once: true });
      }
      const hadRunner = this.withFn > 0;
      if (init.fn !== undefined) this.withFn++;
      this.callers.push(caller);
      if (caller.deadline < this.timerAt) this.armTimer(caller.deadline);
      // A flight that only waited (`wait` callers) may now take the key over: tell it.
      if (init.fn !== undefined && !hadRunner) this.runnerListener?.();
    });
  }

  /** True once every caller left (or the instance closes): do nothing more that starts work. */
  get stopped(): boolean {
    return this.stopReason !== undefined;
  }

  /** Runs `listener` when the flight stops (at once if it has); returns the function that removes it. */
  onStop(listener: () => void): () => void {
    if (this.stopped) {
      listener();
      return () => {};
    }
    this.stopListeners.push(listener);
    return () => {
      this.stopListeners = this.stopListeners.filter((l) => l !== listener);
    };
  }

  /** `listener` runs when a caller with an fn joins a flight that had none (one listener). */
  onRunnerJoined(listener: (() => void) | undefined): void {
    this.runnerListener = listener;
  }

  /**
   * The settings of the caller whose fn would run next, with the most attempts any caller with an fn
   * allows (the key is taken over while one of them may); undefined when only `wait` callers remain.
   */
  nextRunner(): CallSettings | undefined {
    if (this.withFn === 0) return undefined;
    if (this.callers.length === 1) return this.callers[0]!.settings;
    let first: Caller | undefined;
    let maxAttempts = 0;
    for (const caller of this.callers) {
      if (caller.fn === undefined) continue;
      first ??= caller;
      maxAttempts = Math.max(maxAttempts, caller.settings.maxAttempts);
    }
    return first && { ...first.settings, maxAttempts };
  }

  /** The most attempts any caller allows (`wait` callers by their instance's maxAttempts). */
  maxAttempts(): number {
    let most = 0;
    for (const caller of this.callers) most = Math.max(most, caller.settings.maxAttempts);
    return most;
  }

  /**
   * `attempts` ended without the value: each caller whose own maxAttempts they reach fails fast with
   * `error()` (its decision is its own); the others stay, to take over or to wait.
   */
  failSpent(attempts: number, error: () => unknown): void {
    const spent = this.callers.filter((c) => c !== this.runner && c.settings.maxAttempts <= attempts);
    if (spent.length === 0) return;
    const reason = error();
    for (const caller of spent) this.leave(caller, reason);
  }

  /**
   * Chooses the caller whose fn runs now (the earliest still waiting with one) and takes it off the
   * flight's timer: from here on, fn's own lease rules bound its call, not its wait timeout or signal.
   */
  startRunning(): OnceFn | undefined {
    const runner = this.callers.find((c) => c.fn !== undefined);
    if (!runner) return undefined;
    this.runner = runner;
    this.unlisten(runner);
    return runner.fn;
  }

  /** The settings of the caller whose fn runs now. */
  get runnerSettings(): CallSettings | undefined {
    return this.runner?.settings;
  }

  /** The traceparent of the call whose fn runs now, stored with its value for followers to link to. */
  get runnerTrace(): string | undefined {
    return this.runner?.trace;
  }

  /** True while a caller's fn runs in this process. */
  get running(): boolean {
    return this.runner !== undefined;
  }

  /**
   * fn's attempt ended without the value (it threw, or lost its lease): its caller rejects with
   * `error`; the other callers stay, to take over or to fail with the key.
   */
  endRun(error: unknown): void {
    const runner = this.runner;
    this.runner = undefined;
    this.leadFrame = undefined;
    if (!runner) return;
    this.remove(runner);
    runner.reject(error);
    this.stopIfEmpty();
  }

  /** The flight ends with the key's value: every caller resolves. `by` says who produced it. */
  succeed(done: DoneValue, by: 'here' | 'elsewhere' | 'before'): void {
    const callers = this.finish();
    const now = performance.now();
    for (const caller of callers) {
      const role: Role =
        by === 'before' ? 'cached' : by === 'here' && caller === this.runner ? 'leader' : 'follower';
      if (!caller.detailed) {
        caller.resolve(done.value);
        continue;
      }
      const result: RunResult<unknown> = {
        value: done.value,
        role,
        fencingToken: done.fencingToken,
        attempt: done.attempt,
        waitedMs: now - caller.started,
      };
      if (done.leaderTrace !== undefined) result.leaderTrace = done.leaderTrace;
      caller.resolve(result);
    }
    this.runner = undefined;
  }

  /** The flight ends without the value: every caller still here rejects with `error`. */
  fail(error: unknown): void {
    for (const caller of this.finish()) caller.reject(error);
    this.runner = undefined;
  }

  /** The instance is closing: every waiting caller rejects; a caller whose fn runs waits for its end. */
  close(): void {
    for (const caller of [...this.callers]) {
      if (caller !== this.runner) this.leave(caller, new OnceClosedError(this.key));
    }
    this.stop('closed');
  }

  private finish(): Caller[] {
    const callers = this.callers.splice(0);
    this.withFn = 0;
    for (const caller of callers) this.unlisten(caller);
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    this.stop('ended');
    return callers;
  }

  private leave(caller: Caller, error: unknown): void {
    if (!this.remove(caller)) return;
    this.unlisten(caller);
    caller.reject(error);
    this.stopIfEmpty();
  }

  private remove(caller: Caller): boolean {
    const index = this.callers.indexOf(caller);
    if (index === -1) return false;
    this.callers.splice(index, 1);
    if (caller.fn !== undefined) this.withFn--;
    return true;
  }

  private unlisten(caller: Caller): void {
    if (caller.onAbort) caller.signal?.removeEventListener('abort', caller.onAbort);
    caller.onAbort = undefined;
  }

  private stopIfEmpty(): void {
    if (this.callers.length === 0 && this.runner === undefined) {
      this.stop('left');
    }
  }

  private stop(reason: 'left' | 'ended' | 'closed'): void {
    if (this.stopped) return;
    this.stopReason = reason;
    clearTimeout(this.timer);
    for (const listener of this.stopListeners.splice(0)) listener();
  }

  private armTimer(at: number): void {
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.expire(), delayUntil(at));
    this.timer.unref();
  }

  /** The timer fired: every caller whose deadline has come leaves; the timer moves to the next one. */
  private expire(): void {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    const now = performance.now();
    let next = Number.POSITIVE_INFINITY;
    const staying: Caller[] = [];
    const leaving: Caller[] = [];
    // One pass: thousands of callers may time out together.
    for (const caller of this.callers) {
      if (caller !== this.runner && caller.deadline <= now + 1) leaving.push(caller);
      else {
        staying.push(caller);
        if (caller !== this.runner) next = Math.min(next, caller.deadline);
      }
    }
    this.callers = staying;
    for (const caller of leaving) {
      if (caller.fn !== undefined) this.withFn--;
      this.unlisten(caller);
      caller.reject(timeoutError(this.key, caller.waitTimeoutMs));
    }
    this.stopIfEmpty();
    if (next !== Number.POSITIVE_INFINITY && !this.stopped) this.armTimer(next);
  }
}

function timeoutError(key: string, timeoutMs: number): OnceTimeoutError {
  return new OnceTimeoutError(
    `Waited ${timeoutMs} ms for "${key}" (waitTimeoutMs); it is still running, or waiting for a takeover. ` +
      'The work goes on; raise waitTimeoutMs to wait longer.',
    { key, timeoutMs },
  );
}
