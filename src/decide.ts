import type { ErrorSummary } from './errors.js';
import type { PreviousAttempt, Snapshot, StoredState } from './state.js';

/**
 * What a key is doing, read from one snapshot. The one place that knows that a `running` state whose
 * lease is gone is a leader that stopped renewing — crashed, or paused past its lease — and not a
 * leader at work: `run`, `wait`, `status` and every error message take it from here.
 */
export type Phase =
  | { kind: 'idle' }
  | { kind: 'running'; leaseMs: number }
  | { kind: 'crashed' }
  | { kind: 'failed' }
  | { kind: 'done' };

export function phaseOf(snapshot: Snapshot): Phase {
  const { state, leasePttl } = snapshot;
  if (state.status === 'done') return { kind: 'done' };
  // A held lease means a leader is at work, whatever the state says (on a quorum, a claim may be
  // half-way through its masters).
  if (leasePttl > 0) return { kind: 'running', leaseMs: leasePttl };
  if (state.status === 'running') return { kind: 'crashed' };
  if (state.status === 'failed') return { kind: 'failed' };
  return { kind: 'idle' };
}

/** What a caller does next with a key. */
export type Decision =
  /** The value is recorded: take it. */
  | { kind: 'done' }
  /** A leader holds the lease for `leaseMs` more: wait for its message, or until then. */
  | { kind: 'wait'; leaseMs: number }
  /** Every allowed attempt is spent: fail fast with the last attempt's error. */
  | { kind: 'failed'; attempts: number; last: ErrorSummary }
  /** Nobody leads and attempts remain: take the key over as attempt `attempt`. */
  | { kind: 'lead'; attempt: number; previous: PreviousAttempt | undefined };

/**
 * decide(snapshot, maxAttempts): the whole protocol's choice, as a pure function. The claim script
 * applies the same rule atomically in Redis (it takes the lease only when this says `lead`); a script
 * test holds the two to each other.
 */
export function decide(snapshot: Snapshot, maxAttempts: number): Decision {
  const phase = phaseOf(snapshot);
  switch (phase.kind) {
    case 'done':
      return { kind: 'done' };
    case 'running':
      return { kind: 'wait', leaseMs: phase.leaseMs };
    case 'idle':
      return { kind: 'lead', attempt: 1, previous: undefined };
    case 'crashed':
    case 'failed': {
      const { state } = snapshot;
      if (state.attempts >= maxAttempts) {
        return { kind: 'failed', attempts: state.attempts, last: lastError(snapshot)! };
      }
      return { kind: 'lead', attempt: state.attempts + 1, previous: previousAttempt(state) };
    }
  }
}

/**
 * What a takeover tells fn about the state it replaces (`ctx.previous`): nothing after an idle key; a
 * `running` state it took over is a leader that stopped renewing (crashed).
 */
export function previousAttempt(state: StoredState): PreviousAttempt | undefined {
  if (state.status !== 'running' && state.status !== 'failed') return undefined;
  return {
    owner: state.owner,
    fencingToken: state.token,
    startedAt: state.startedAt,
    outcome: state.status === 'running' ? 'crashed' : (state.outcome ?? 'failed'),
  };
}

/** The error of the key's last attempt, when it ended without a value (failed, or crashed). */
export function lastError(snapshot: Snapshot): ErrorSummary | undefined {
  const phase = phaseOf(snapshot);
  if (phase.kind === 'crashed') {
    const by = snapshot.state.owner ? ` ${snapshot.state.owner}` : '';
    return {
      name: 'LeaseLostError',
      message: `the leader${by} stopped renewing its lease (crashed, or paused past its lease)`,
    };
  }
  if (phase.kind === 'failed') return snapshot.state.error ?? { name: 'Error', message: 'unknown error' };
  return undefined;
}
