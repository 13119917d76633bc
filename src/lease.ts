import { LeaseLostError } from './errors.js';
import { prove, provenSentAt, REFUSED, standbyRepliedAt, stateOf } from './renewer/cell.js';
import type { Standby } from './renewer/standby.js';
import { delayUntil } from './timeout.js';

/**
 * A leader's lease, as seen from its own process: timers only, no Redis. The store renews it; this
 * decides when, and when the lease can no longer be trusted.
 *
 * Validity is measured on the monotonic clock from the moment each claim or renewal was *sent* (the
 * redlock rule, so the time spent in flight counts against us):
 *
 *   validUntil = sentAt + leaseMs − drift        drift = 1% of leaseMs + 2 ms
 *   abortAt    = validUntil − guard              guard = a tenth of leaseMs (at least 5 ms)
 *
 * A renewal is sent at a third of the lease and waits at most half the time left before `abortAt`;
 * if it is not proven by then, a second one is sent at once and may wait until `abortAt`: two chances.
 * At `abortAt`, `signal` aborts with LeaseLostError: while the lease is still ours in Redis, so fn
 * hears of it before anyone else can take over. A renewal answered after `abortAt` proves nothing.
 * The timers are unref'd and never throw.
 *
 * A standby renewer (src/renewer) may renew too while this thread is stalled: validity counts from the
 * latest renewal either side proved, read from the lease's shared cell.
 */
export interface LeaseTiming {
  readonly leaseMs: number;
  readonly driftMs: number;
  readonly guardMs: number;
}

/** The smallest lease we accept: below it a renewal has no room for a round trip and a retry. */
export const MIN_LEASE_MS = 100;
/** No renewal is retried with less than this left before the deadline. */
const MIN_RETRY_MS = 5;
/** The pause before trying again after a renewal that failed fast. */
const RETRY_PAUSE_MS = 100;

export function leaseTiming(leaseMs: number): LeaseTiming {
  return {
    leaseMs,
    driftMs: Math.round(leaseMs * 0.01) + 2,
    guardMs: Math.max(Math.ceil(leaseMs / 10), 5),
  };
}

/** How a renewal went: proven, refused (the lease is someone else's now), or not answered in time. */
export type RenewOutcome = 'renewed' | 'refused' | 'unanswered';

export interface LeaseOptions {
  key: string;
  leaseMs: number;
  /** performance.now() when the claim was sent. */
  sentAt: number;
  /** performance.now() when its reply came (the lease was set at some point between the two). */
  repliedAt: number;
  /** One renewal, bounded by `withinMs`; never rejects. */
  renew: (withinMs: number) => Promise<RenewOutcome>;
  /** Told of each proven renewal, and of the loss (observers: diagnostics.ts). Must not throw. */
  onRenewed?: () => void;
  onLost?: (reason: unknown) => void;
}

export class Lease {
  private readonly timing: LeaseTiming;
  /** Made when fn first looks at its signal (most never do): an AbortController per lease costs. */
  private controller: AbortController | undefined;
  /** Why the lease was lost, once it was. */
  private lostReason: unknown;
  private lost = false;
  private lostListener: (() => void) | undefined;
  /** When the last claim or renewal proven by this thread was sent. */
  private sentAt: number;
  /** When the last proven claim or renewal was answered: Redis expires the lease by then + leaseMs. */
  private repliedAt: number;
  /** The standby renewer's watch of this lease, from `start` while it runs. */
  private standby: Standby | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  private abortTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** A renewal is on its way. */
  private renewing = false;
  /** Renew again as soon as the renewal on its way is answered (it may predate news of a reset). */
  private renewAgain = false;
  /** Why the lease is lost if a renewal is refused; set by `confirm`. */
  private refusedReason: unknown;

  constructor(private readonly options: LeaseOptions) {
    this.timing = leaseTiming(options.leaseMs);
    this.sentAt = options.sentAt;
    this.repliedAt = options.repliedAt;
  }

  /**
   * Starts the renewal timer. The abort timer is armed with the first renewal: until a third of the
   * lease nothing can be lost, and a renewal timer that fires late (a paused process) finds the
   * deadline passed by itself. Most fns end before either: one timer per lease, not two.
   */
  start(standby?: (lease: Lease) => Standby | undefined): void {
    if (this.stopped || this.lost) return;
    this.standby = standby?.(this);
    this.armRenewal(this.options.sentAt + this.options.leaseMs / 3);
  }

  /** The standby renewer was told the lease is not ours: lost, as a refusal here would be. */
  refusedElsewhere(): void {
    if (this.stopped || this.lost) return;
    this.lose(this.refusedError());
  }

  /** Aborted (reason: LeaseLostError) when the lease can no longer be trusted. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.lost) this.controller.abort(this.lostReason);
    }
    return this.controller.signal;
  }

  /** True once the lease is lost, taken, or given up. */
  get isLost(): boolean {
    return this.lost;
  }

  /** Why the lease was lost (a LeaseLostError), once it was. */
  get reason(): unknown {
    return this.lostReason;
  }

  /** Resolves when the lease is lost (at once if it is): for the one caller that races fn against it. */
  whenLost(): Promise<void> {
    if (this.lost) return Promise.resolve();
    return new Promise((resolve) => {
      this.lostListener = resolve;
    });
  }

  /** The last instant (performance.now()) at which the lease is ours with room to spare. */
  get abortAt(): number {
    return this.validUntil() - this.timing.guardMs;
  }

  /** Validity counts from the latest proven sending, this thread's or the standby's. */
  private validUntil(): number {
    const sentAt = this.standby ? Math.max(this.sentAt, provenSentAt(this.standby.cell)) : this.sentAt;
    return sentAt + this.options.leaseMs - this.timing.driftMs;
  }

  /** When the lease expires in Redis at the latest (performance.now()), allowing for clock drift. */
  get expiresAt(): number {
    const repliedAt = this.standby
      ? Math.max(this.repliedAt, standbyRepliedAt(this.standby.cell))
      : this.repliedAt;
    return repliedAt + this.options.leaseMs + this.timing.driftMs;
  }

  /** True while the lease is proven ours (before `abortAt`, not lost, not given up). */
  isValid(): boolean {
    return !this.lost && performance.now() < this.abortAt;
  }

  /** Stops renewing, for good (fn settled, the lease is being released, or the instance is closing). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.renewTimer);
    clearTimeout(this.abortTimer);
    const standby = this.standby;
    if (!standby) return;
    // What the standby proved stays ours; its cell is given back (another lease may take it soon).
    this.sentAt = Math.max(this.sentAt, provenSentAt(standby.cell));
    this.repliedAt = Math.max(this.repliedAt, standbyRepliedAt(standby.cell));
    this.standby = undefined;
    standby.stop();
  }

  /**
   * News that the lease may have been taken (a forced reset was announced): renew now rather than at
   * the next timer, and lose the lease with `reason` if Redis refuses. A renewal proves the news wrong
   * where it was only partly true (a quorum's minority applied the reset late, after this attempt began).
   */
  confirm(reason: unknown): void {
    if (this.stopped || this.lost) return;
    this.refusedReason = reason;
    clearTimeout(this.renewTimer);
    void this.renewOnce();
  }

  /** The lease is not ours any more (or must not be trusted): stop, and abort `signal` with `reason`. */
  lose(reason: unknown): void {
    this.stop();
    if (this.lost) return;
    this.lost = true;
    this.lostReason = reason;
    this.controller?.abort(reason);
    this.lostListener?.();
    this.options.onLost?.(reason);
  }

  private refusedError(): unknown {
    return (
      this.refusedReason ??
      new LeaseLostError(
        `Lease lost: the lease of "${this.options.key}" is not ours any more ` +
          '(it expired and was taken over, or the key was reset with force).',
        { key: this.options.key },
      )
    );
  }

  private armAbort(): void {
    clearTimeout(this.abortTimer);
    // Timers run on a millisecond clock and may fire a fraction early by performance.now(): look again.
    this.abortTimer = setTimeout(() => {
      if (!this.checkDeadline()) this.armAbort();
    }, delayUntil(this.abortAt));
    this.abortTimer.unref();
  }

  private armRenewal(at: number): void {
    clearTimeout(this.renewTimer);
    this.renewTimer = setTimeout(() => void this.renewOnce(), delayUntil(at));
    this.renewTimer.unref();
  }

  /** Loses the lease once the deadline has passed; a timer that fires late (a paused process) lands here. */
  private checkDeadline(): boolean {
    if (this.stopped || this.lost) return true;
    if (this.standby && stateOf(this.standby.cell) === REFUSED) {
      this.lose(this.refusedError());
      return true;
    }
    if (performance.now() < this.abortAt) return false;
    this.lose(
      new LeaseLostError(
        `Lease lost: could not renew the lease of "${this.options.key}" in time ` +
          '(Redis unreachable or slow, or this process paused).',
        { key: this.options.key },
      ),
    );
    return true;
  }

  private async renewOnce(): Promise<void> {
    if (this.checkDeadline()) return;
    if (this.renewing) {
      this.renewAgain = true;
      return;
    }
    if (!this.abortTimer) this.armAbort();
    const sentAt = performance.now();
    const left = this.abortAt - sentAt;
    // Each try leaves room for another before the deadline: at least two chances.
    this.renewing = true;
    this.renewAgain = false;
    const outcome = await this.options.renew(left < 4 * MIN_RETRY_MS ? left : left / 2);
    this.renewing = false;
    // Proven only if answered before the deadline we were living on.
    if (this.checkDeadline()) return;
    if (outcome === 'renewed') {
      this.sentAt = sentAt;
      this.repliedAt = performance.now();
      if (this.standby) prove(this.standby.cell, sentAt);
      this.armAbort();
      this.options.onRenewed?.();
      if (this.renewAgain) {
        this.renewAgain = false;
        void this.renewOnce();
      } else this.armRenewal(sentAt + this.options.leaseMs / 3);
    } else if (outcome === 'refused') {
      this.lose(this.refusedError());
    } else {
      // Not answered: try again while there is time — at once if this try waited out its bound, after a
      // short pause if it failed fast (a connection being re-established).
      const now = performance.now();
      const remaining = this.abortAt - now;
      if (remaining <= MIN_RETRY_MS) return;
      if (now - sentAt >= left / 2 - 1) void this.renewOnce();
      else this.armRenewal(now + Math.min(remaining / 4, RETRY_PAUSE_MS));
    }
  }
}
