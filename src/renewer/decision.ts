import { leaseTiming } from '../lease.js';

/**
 * What the standby renewer does with one lease now: the whole rule, pure, so a table can hold it
 * (test/unit/standby-decision.test.ts). Instants are this thread's performance.now().
 */
export type StandbyMove =
  /** Renew, waiting at most `withinMs` for the reply (half the time left: room for another try). */
  | { kind: 'renew'; withinMs: number }
  /** Not now: the leader's own renewal is not overdue, its thread is awake, or it is wedged. */
  | { kind: 'wait' }
  /** The lease can no longer be trusted: its leader loses it when its thread runs again. */
  | { kind: 'drop' };

export interface StandbyView {
  now: number;
  /** When the last proven claim or renewal was sent (either side). */
  provenSentAt: number;
  /** The leader thread's last heartbeat. */
  lastBeat: number;
  leaseMs: number;
  /** Without a heartbeat this long, the leader's thread is stalled. */
  stalledAfterMs: number;
  /** Stalled longer than this, it is wedged. */
  maxStallMs: number;
}

/** The last instant a lease proven from `provenSentAt` can be trusted: lease.ts's `abortAt`. */
export function abortAtOf(provenSentAt: number, leaseMs: number): number {
  const { driftMs, guardMs } = leaseTiming(leaseMs);
  return provenSentAt + leaseMs - driftMs - guardMs;
}

export function standbyMove(view: StandbyView): StandbyMove {
  const abortAt = abortAtOf(view.provenSentAt, view.leaseMs);
  if (view.now >= abortAt) return { kind: 'drop' };
  // The leader renews at a third of the lease; at half, it is late.
  const overdue = view.now >= view.provenSentAt + view.leaseMs / 2;
  const stalledFor = view.now - view.lastBeat;
  // An awake leader that cannot renew is not helped (its own timers abort fn, as always); nor is a
  // wedged one (it loses its lease, as always).
  if (!overdue || stalledFor < view.stalledAfterMs || stalledFor > view.maxStallMs) return { kind: 'wait' };
  return { kind: 'renew', withinMs: Math.max(1, (abortAt - view.now) / 2) };
}
