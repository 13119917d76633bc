import { ExecutionError, Lock, Redlock, ResourceLockedError } from '@sesamecare-oss/redlock';
import createDebug from 'debug';
import { LeaseLostError, RedisUnavailableError } from './errors.js';
import type { RedisNode } from './redis-node.js';
import { withTimeout } from './timeout.js';

const debug = createDebug('redis-once:lease');

/**
 * The lease: who may run a key's fn right now. The only file that imports redlock.
 *
 * We use redlock for acquire, extend and release only, one attempt each (`retryCount: 0`): followers
 * wait on pub/sub, not in a retry loop, and we own renewal and abort. Redlock's own notion of validity
 * uses the wall clock and starts before its retries (node-redlock #253), so we measure validity here
 * with a monotonic clock from the moment each request is sent:
 *
 *   validUntil = sentAt + ttl − drift,   drift = 1% of ttl + 2 ms (as redlock computes it)
 *
 * Renewal is tried at a third of the lease and again at two thirds; if neither is proven by
 * `validUntil − guard` (guard = a tenth of the lease), `signal` aborts with LeaseLostError — while the
 * lease is still ours in Redis, so fn hears of it before anyone else can take over.
 */
export interface Lease {
  /** The random value redlock stored at the lease key; the scripts check it. */
  readonly value: string;
  /** Aborted (reason: LeaseLostError) when renewal is not proven in time, or the lease is taken. */
  readonly signal: AbortSignal;
  /** True while the lease is proven to be ours (before `validUntil − guard`, and not aborted). */
  isValid(): boolean;
  /** Stops renewing. Call once the lease is released by a script or given up. */
  stop(): void;
  /** Stops renewing and releases the lease, once, bounded in time; never throws. */
  release(): Promise<void>;
  /** Gives the lease up from our side: stops renewing and aborts `signal` with LeaseLostError. */
  abandon(why: string): void;
}

const DRIFT_FACTOR = 0.01;

export class Leases {
  private readonly redlock: Redlock;

  constructor(
    private readonly nodes: readonly RedisNode[],
    private readonly timeoutMs: number,
  ) {
    // Redlock's scripts SELECT a database; it must be the one our state lives in (a Cluster has only 0).
    const first = nodes[0]?.client as { options?: { db?: number } } | undefined;
    const db = nodes[0]?.isCluster ? 0 : (first?.options?.db ?? 0);
    this.redlock = new Redlock(
      nodes.map((node) => node.client),
      { retryCount: 0, driftFactor: DRIFT_FACTOR, db },
    );
  }

  /**
   * One attempt to take the lease. Resolves undefined when someone else holds it; rejects with
   * RedisUnavailableError when a majority did not answer within `redisTimeoutMs`.
   */
  async tryAcquire(resource: string, ttlMs: number, key: string): Promise<Lease | undefined> {
    await Promise.all(this.nodes.map((node) => node.settled()));
    const sentAt = performance.now();
    try {
      const lock = await this.bounded(this.redlock.acquire([resource], ttlMs), 'acquiring the lease', key);
      return new RenewingLease(this, lock, ttlMs, sentAt, key);
    } catch (error) {
      if ((await this.classify(error, key)) === 'held') return undefined;
      throw error instanceof RedisUnavailableError
        ? error
        : new RedisUnavailableError(`Could not reach a majority of Redis to acquire the lease of "${key}".`, {
            key,
            cause: error,
          });
    }
  }

  /**
   * One extend attempt, bounded by `withinMs`; rejects with the reason it is not proven.
   *
   * Each attempt extends a fresh Lock for our resource and value. Redlock marks a Lock it extended as
   * expired (`expiration = 0`) and refuses to extend it again, even when our bound gave up on that
   * extend before its late success; and it judges expiry by the wall clock. Validity is ours to judge
   * (monotonic, above), so the Lock handed to redlock only carries the resource and the value.
   */
  async extend(resource: string, value: string, ttlMs: number, withinMs: number, key: string): Promise<void> {
    const lock = new Lock(this.redlock, [resource], value, [], Date.now() + ttlMs);
    await withTimeout(
      this.redlock.extend(lock, ttlMs),
      Math.max(0, Math.min(this.timeoutMs, withinMs)),
      () =>
        new RedisUnavailableError(`Redis did not confirm renewing the lease of "${key}" in time.`, { key }),
    );
  }

  async release(lock: Lock, key: string): Promise<void> {
    await this.bounded(this.redlock.release(lock), 'releasing the lease', key);
  }

  /**
   * Tells "someone else holds it" from "Redis did not answer". Redlock throws one ExecutionError for
   * both (node-redlock #185); its per-client votes say which.
   */
  async classify(error: unknown, key: string): Promise<'held' | 'unreachable'> {
    if (!(error instanceof ExecutionError) || error.attempts.length === 0) return 'unreachable';
    try {
      const stats = await this.bounded(
        error.attempts[error.attempts.length - 1]!,
        'counting lease votes',
        key,
      );
      const refused = [...stats.votesAgainst.values()].some((e) => e instanceof ResourceLockedError);
      return refused ? 'held' : 'unreachable';
    } catch {
      return 'unreachable';
    }
  }

  private bounded<T>(promise: Promise<T>, what: string, key: string): Promise<T> {
    return withTimeout(
      promise,
      this.timeoutMs,
      () =>
        new RedisUnavailableError(
          `Redis did not answer ${what} within ${this.timeoutMs} ms (redisTimeoutMs).`,
          { key },
        ),
    );
  }
}

class RenewingLease implements Lease {
  readonly value: string;
  private readonly controller = new AbortController();
  private readonly resource: string;
  private validUntil: number;
  private readonly guardMs: number;
  private renewTimer: NodeJS.Timeout | undefined;
  private abortTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private released: Promise<void> | undefined;

  constructor(
    private readonly leases: Leases,
    private readonly lock: Lock,
    private readonly ttlMs: number,
    sentAt: number,
    private readonly key: string,
  ) {
    this.value = lock.value;
    this.resource = lock.resources[0]!;
    this.guardMs = Math.max(Math.ceil(ttlMs / 10), 5);
    this.validUntil = sentAt + ttlMs - drift(ttlMs);
    this.scheduleAbort();
    this.scheduleRenewal(sentAt + ttlMs / 3);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  isValid(): boolean {
    return !this.controller.signal.aborted && performance.now() < this.abortAt();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.renewTimer);
    clearTimeout(this.abortTimer);
  }

  release(): Promise<void> {
    this.stop();
    this.released ??= this.leases.release(this.lock, this.key).catch((error: unknown) => {
      // The lease expires by itself; a failed release only delays a takeover by its TTL.
      debug('release of %s failed: %s', this.key, error instanceof Error ? error.message : error);
    });
    return this.released;
  }

  abandon(why: string): void {
    if (!this.controller.signal.aborted) this.lose(why);
  }

  /** The last instant at which the lease is still ours with room to spare. */
  private abortAt(): number {
    return this.validUntil - this.guardMs;
  }

  private scheduleAbort(): void {
    clearTimeout(this.abortTimer);
    this.abortTimer = setTimeout(() => this.checkDeadline(), Math.max(0, this.abortAt() - performance.now()));
    this.abortTimer.unref();
  }

  private scheduleRenewal(at: number): void {
    clearTimeout(this.renewTimer);
    this.renewTimer = setTimeout(() => void this.renew(), Math.max(0, at - performance.now()));
    this.renewTimer.unref();
  }

  /** Aborts when the deadline has passed: a timer that fires late (paused process) lands here first. */
  private checkDeadline(): boolean {
    if (this.stopped || this.controller.signal.aborted) return true;
    if (performance.now() < this.abortAt()) return false;
    this.lose(
      `could not renew the lease of "${this.key}" in time (Redis unreachable or this process paused)`,
    );
    return true;
  }

  private async renew(): Promise<void> {
    if (this.checkDeadline()) return;
    const sentAt = performance.now();
    try {
      // An answer after our deadline proves nothing, so wait no longer than that.
      await this.leases.extend(this.resource, this.value, this.ttlMs, this.abortAt() - sentAt, this.key);
      // Proven only if the reply came before the deadline we were living on.
      if (this.checkDeadline()) return;
      this.validUntil = sentAt + this.ttlMs - drift(this.ttlMs);
      this.scheduleAbort();
      this.scheduleRenewal(sentAt + this.ttlMs / 3);
      debug('renewed %s', this.key);
    } catch (error) {
      if (this.checkDeadline()) return;
      if ((await this.leases.classify(error, this.key)) === 'held') {
        this.lose(`the lease of "${this.key}" is held by someone else now (taken over, or reset with force)`);
        return;
      }
      // Second chance: try again halfway to the deadline, before the abort.
      const remaining = this.abortAt() - performance.now();
      debug(
        'renewal of %s not proven (%s); retrying',
        this.key,
        error instanceof Error ? error.message : error,
      );
      this.scheduleRenewal(performance.now() + Math.max(remaining / 2, 0));
    }
  }

  private lose(message: string): void {
    this.stop();
    debug('lease lost: %s', message);
    this.controller.abort(new LeaseLostError(`Lease lost: ${message}.`, { key: this.key }));
  }
}

function drift(ttlMs: number): number {
  return Math.round(DRIFT_FACTOR * ttlMs) + 2;
}
