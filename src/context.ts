import type { PreviousAttempt } from './state.js';

export type { PreviousAttempt, PreviousOutcome } from './state.js';

/** What fn receives. */
export interface OnceContext {
  /** The once-key. */
  readonly key: string;
  /** Strictly increasing per key, cluster-wide: store it beside what fn writes, and refuse lower ones. */
  readonly fencingToken: number;
  /** This attempt's number, from 1; a crash or a lost lease spends one too. */
  readonly attempt: number;
  /** The node id of this process (option `nodeId`). */
  readonly nodeId: string;
  /**
   * Aborted before the lease can expire when renewal is not proven in time, when the key is reset with
   * force, and when the instance closes; the reason is a LeaseLostError. Stop work when it aborts: the
   * attempt's value is no longer recorded.
   */
  readonly signal: AbortSignal;
  /** Set on a takeover: the attempt before this one, so fn can repair what it left half-done. */
  readonly previous: PreviousAttempt | undefined;
}
