import type { AsyncLocalStorage } from 'node:async_hooks';
import createDebug from 'debug';
import { LeaseLostError, OnceFailedError, RedisUnavailableError, summarizeError } from './errors.js';
import type { KeyNames } from './keys.js';
import type { Lease, Leases } from './lease.js';
import type { ReadReply } from './scripts.js';
import type { PreviousOutcome, StoredState } from './state.js';
import { decodeMessage } from './state.js';
import type { Store } from './store.js';
import { decodeValue, encodeValue } from './value.js';
import { KeyWatch, type Subscriber } from './waiter.js';

const debug = createDebug('redis-once:coordinator');

/** What fn receives. */
export interface OnceContext {
  /** The once-key. */
  readonly key: string;
  /** Strictly increasing per key, cluster-wide: store it beside what fn writes, reject lower ones. */
  readonly fencingToken: number;
  /** This attempt's number, from 1; crashes and lost leases count too. */
  readonly attempt: number;
  /** The node id of this process (option `nodeId`). */
  readonly nodeId: string;
  /** Aborted, with a LeaseLostError reason, before the lease can expire when renewal is not proven. */
  readonly signal: AbortSignal;
  /** Set on a takeover: the attempt before this one, so fn can repair what it left half-done. */
  readonly previous: PreviousAttempt | undefined;
}

export interface PreviousAttempt {
  readonly owner: string | undefined;
  readonly fencingToken: number;
  readonly startedAt: number | undefined;
  readonly outcome: PreviousOutcome;
}

export type Role = 'leader' | 'follower' | 'cached';

/** The outcome of one flight: the key is done, here or elsewhere. */
export interface FlightResult {
  readonly value: unknown;
  readonly role: Role;
  readonly fencingToken: number;
  readonly attempt: number;
  /**
   * When the done state expires in Redis, as a performance.now() instant measured from before the
   * request that learned it (so the memo never outlives it); Infinity when it is kept until reset.
   */
  readonly expiresAt: number;
}

/** fn's own failure in this process, handed to the caller whose fn it was (the memo unwraps it). */
export class AttemptFailure {
  constructor(readonly error: unknown) {}
}

export interface KeyOptions {
  leaseMs: number;
  maxAttempts: number;
  doneTtlMs: number | undefined;
}

export interface CoordinatorDeps {
  store: Store;
  leases: Leases;
  subscribers: readonly Subscriber[];
  nodeId: string;
  sharded: boolean;
  /** Keys whose fn is running in the current async context, to refuse re-entry. */
  running: AsyncLocalStorage<ReadonlySet<string>>;
}

/** Margin past a lease deadline before re-reading, so the lease has surely expired in Redis. */
const DEADLINE_SLACK_MS = 2;
/** A completion message arrives this much after its TTL started, at most, on a healthy network. */
const MESSAGE_DELAY_MARGIN_MS = 10;
/** How long a caller that lost the race for a free lease waits (unless a message comes first). */
const LOST_RACE_PAUSE_MS = 50;

/**
 * One key's protocol, for one flight of one process:
 *
 *   read ─▶ done?            → return the value
 *        ─▶ leader alive?    → subscribe, re-read, wait for the message or the lease deadline
 *        ─▶ attempts spent?  → OnceFailedError
 *        ─▶ otherwise        → acquire the lease → begin (new fencing token) → fn, renewing
 *                              → complete (value + publish) | fail (error + publish + release)
 *
 * A follower subscribes before it re-reads, so a completion published in between is never missed,
 * and it wakes only on a message or at the lease deadline it read — never on a polling timer.
 * `stop` ends a follower's wait (every caller gave up, or the instance closed); it never interrupts a
 * running fn: the shared work is not any one caller's to cancel.
 */
export class Coordinator {
  /** Leases held by attempts running in this process, and the attempts themselves, for `close()`. */
  private readonly leading = new Map<Lease, Promise<unknown>>();
  private readonly acquiring = new Set<Promise<unknown>>();

  constructor(private readonly deps: CoordinatorDeps) {}

  /**
   * Gives up every lease this process holds (close): each running attempt's `ctx.signal` aborts and
   * the attempt is recorded as failed, so another node takes over at once. Resolves when recorded.
   */
  async abandonAll(why: string): Promise<void> {
    // Flights were stopped before this: a lease won from here on is given back by its flight.
    await Promise.allSettled([...this.acquiring]);
    const attempts = [...this.leading.entries()];
    for (const [lease] of attempts) lease.abandon(why);
    await Promise.allSettled(attempts.map(([, attempt]) => attempt));
  }

  /**
   * One try for the lease. A flight stopped meanwhile (every caller left, or close()) gives a lease it
   * won straight back, before fn could start. close() waits for tries in progress (`abandonAll`).
   */
  private async acquire(names: KeyNames, leaseMs: number, stop: AbortSignal): Promise<Lease | undefined> {
    const trying = (async () => {
      const lease = await this.deps.leases.tryAcquire(names.lease, leaseMs, names.key);
      if (lease && stop.aborted) {
        await lease.release();
        throw stop.reason;
      }
      return lease;
    })();
    this.acquiring.add(trying);
    try {
      return await trying;
    } finally {
      this.acquiring.delete(trying);
    }
  }

  /** The key's state right now, with its lease (read-only). */
  read(names: KeyNames): Promise<ReadReply> {
    return this.deps.store.read(names);
  }

  async fly(
    names: KeyNames,
    fn: (ctx: OnceContext) => unknown,
    options: KeyOptions,
    stop: AbortSignal,
    onLeading: () => void,
  ): Promise<FlightResult> {
    let watch: KeyWatch | undefined;
    let waited = false;
    try {
      for (;;) {
        if (stop.aborted) throw stop.reason;
        const readAt = performance.now();
        const snapshot = await this.deps.store.read(names);
        const { state } = snapshot;
        if (state.status === 'done')
          return doneResult(state, waited ? 'follower' : 'cached', expiry(readAt, snapshot.statePttl));

        const leaseHeld = snapshot.leasePttl > 0;
        if (!leaseHeld) {
          if (state.status !== 'idle' && state.attempts >= options.maxAttempts)
            throw failedError(names.key, state);
          const lease = await this.acquire(names, options.leaseMs, stop);
          if (lease) {
            const attempt = this.lead(names, snapshot, lease, fn, options, onLeading);
            this.leading.set(lease, attempt);
            const led = await attempt.finally(() => this.leading.delete(lease));
            if (led) return led;
            // The state moved between our read and our begin (or masters disagree): decide again,
            // after the pause below, rather than in a tight loop.
          }
        }

        // Someone else leads. Subscribe first, then re-read, so no completion can slip between.
        waited = true;
        if (!watch) {
          watch = await KeyWatch.open(this.deps.subscribers, names.done, this.deps.sharded);
          continue;
        }
        // Wait for the lease deadline we read. If the lease looked free, yet we lost the race for it (or
        // our begin was refused), the winner is about to begin: give it a moment rather than spin.
        const until =
          performance.now() + (leaseHeld ? snapshot.leasePttl : LOST_RACE_PAUSE_MS) + DEADLINE_SLACK_MS;
        const wake = await watch.next(until, stop);
        if (wake.kind === 'message' && !this.deps.store.isQuorum) {
          // One master: its message is the state itself. A quorum re-reads, to count a majority.
          const published = decodeMessage(wake.message);
          if (published?.status === 'done')
            // Published when the TTL started; delivery took a moment more, hence the margin.
            return doneResult(
              published,
              'follower',
              expiry(performance.now() - MESSAGE_DELAY_MARGIN_MS, published.doneTtlMs ?? -1),
            );
        }
        debug('%s: woke on %s; re-reading', names.key, wake.kind);
      }
    } finally {
      watch?.close();
    }
  }

  /**
   * We hold the lease: begin an attempt, run fn under the renewing lease, record the outcome.
   * Returns undefined when the state moved before we could begin (the caller decides again).
   */
  private async lead(
    names: KeyNames,
    snapshot: ReadReply,
    lease: Lease,
    fn: (ctx: OnceContext) => unknown,
    options: KeyOptions,
    onLeading: () => void,
  ): Promise<FlightResult | undefined> {
    const { state } = snapshot;
    const attempt = state.attempts + 1;
    // Tokens keep rising while Redis keeps its data; flooring at the server's clock keeps them rising
    // even when a restart without persistence lost the counter.
    const fencingToken = Math.max(snapshot.fence + 1, snapshot.serverMicros);
    const began = await this.deps.store
      .begin(names, {
        leaseValue: lease.value,
        expectedToken: state.token,
        newToken: fencingToken,
        attempt,
        owner: this.deps.nodeId,
      })
      .catch(async (error: unknown) => {
        await lease.release();
        throw error;
      });
    if (!began.ok) {
      debug('%s: begin refused (%s); deciding again', names.key, began.reason);
      await lease.release();
      return undefined;
    }
    onLeading();
    debug('%s: leading attempt %d with token %d', names.key, attempt, fencingToken);

    const ctx: OnceContext = {
      key: names.key,
      fencingToken,
      attempt,
      nodeId: this.deps.nodeId,
      signal: lease.signal,
      previous: previousAttempt(state),
    };
    const outcome = await this.runUnderLease(names.key, fn, ctx, lease);

    if (outcome.kind === 'lost') {
      await this.recordFailure(names, lease, fencingToken, outcome.error, 'lease-lost');
      throw outcome.error;
    }
    let valueJson: string | undefined;
    try {
      if (outcome.kind === 'threw') throw outcome.error;
      valueJson = encodeValue(outcome.value, names.key);
    } catch (error) {
      await this.recordFailure(names, lease, fencingToken, error, 'failed');
      throw new AttemptFailure(error);
    }
    if (!lease.isValid()) {
      // fn settled after the deadline (say, the process was paused) before our timers could abort it.
      lease.abandon(`the lease of "${names.key}" expired before its value could be recorded`);
      await this.recordFailure(names, lease, fencingToken, lease.signal.reason, 'lease-lost');
      throw lease.signal.reason;
    }

    let completed: Awaited<ReturnType<Store['complete']>>;
    const completeAt = performance.now(); // the done state's TTL starts after this
    try {
      completed = await this.deps.store.complete(names, {
        leaseValue: lease.value,
        token: fencingToken,
        valueJson,
        doneTtlMs: options.doneTtlMs,
        publish: this.deps.store.publish,
      });
    } finally {
      lease.stop();
    }
    if (!completed.ok) {
      throw new LeaseLostError(
        `Lease of "${names.key}" was lost before its value could be recorded (${completed.reason}); ` +
          'another attempt may have taken over.',
        { key: names.key },
      );
    }
    return {
      value: decodeValue(valueJson),
      role: 'leader',
      fencingToken,
      attempt,
      expiresAt: expiry(completeAt, options.doneTtlMs ?? -1),
    };
  }

  /** Runs fn; settles as soon as fn settles or the lease is lost, whichever comes first. */
  private runUnderLease(
    key: string,
    fn: (ctx: OnceContext) => unknown,
    ctx: OnceContext,
    lease: Lease,
  ): Promise<
    { kind: 'value'; value: unknown } | { kind: 'threw'; error: unknown } | { kind: 'lost'; error: unknown }
  > {
    const parent = this.deps.running.getStore();
    const running = new Set(parent ?? []).add(key);
    const result = this.deps.running.run(running, async () => fn(ctx));
    return new Promise((resolve) => {
      const onLost = () => {
        // fn may ignore its signal; its eventual result no longer matters and must not go unhandled.
        result.catch(() => {});
        resolve({ kind: 'lost', error: lease.signal.reason });
      };
      if (lease.signal.aborted) return onLost();
      lease.signal.addEventListener('abort', onLost, { once: true });
      result.then(
        (value) => {
          lease.signal.removeEventListener('abort', onLost);
          resolve({ kind: 'value', value });
        },
        (error: unknown) => {
          lease.signal.removeEventListener('abort', onLost);
          resolve({ kind: 'threw', error });
        },
      );
    });
  }

  /**
   * Records a failed attempt cluster-wide and releases the lease in the same script, so a waiter takes
   * over at once. Best effort: if Redis is unreachable the lease simply expires.
   */
  private async recordFailure(
    names: KeyNames,
    lease: Lease,
    token: number,
    error: unknown,
    outcome: 'failed' | 'lease-lost',
  ): Promise<void> {
    lease.stop();
    try {
      const recorded = await this.deps.store.fail(names, {
        leaseValue: lease.value,
        token,
        error: summarizeError(error),
        outcome,
        publish: this.deps.store.publish,
      });
      if (!recorded.ok) debug('%s: failure not recorded (%s)', names.key, recorded.reason);
    } catch (recordError) {
      debug('%s: could not record failure: %s', names.key, (recordError as Error).message);
      if (!(recordError instanceof RedisUnavailableError)) throw recordError;
    }
  }
}

function doneResult(state: StoredState, role: Role, expiresAt: number): FlightResult {
  return {
    value: decodeValue(state.valueJson),
    role,
    fencingToken: state.token,
    attempt: state.attempts,
    expiresAt,
  };
}

/** `ttlMs` from `from` (a performance.now() instant); a negative TTL means none. */
function expiry(from: number, ttlMs: number): number {
  return ttlMs >= 0 ? from + ttlMs : Number.POSITIVE_INFINITY;
}

function previousAttempt(state: StoredState): PreviousAttempt | undefined {
  if (state.status !== 'running' && state.status !== 'failed') return undefined;
  return {
    owner: state.owner,
    fencingToken: state.token,
    startedAt: state.startedAt,
    // A state still `running` without a lease: its leader stopped renewing without a word.
    outcome: state.status === 'running' ? 'crashed' : (state.outcome ?? 'failed'),
  };
}

function failedError(key: string, state: StoredState): OnceFailedError {
  const last =
    state.status === 'failed' && state.error
      ? state.error
      : {
          name: 'LeaseLostError',
          message: `the leader ${state.owner ?? ''} stopped renewing its lease (crashed?)`,
        };
  return new OnceFailedError({
    key,
    attempts: state.attempts,
    lastErrorName: last.name,
    lastErrorMessage: last.message,
  });
}
