import type { ErrorSummary } from '../errors.js';
import type { KeyNames } from '../keys.js';
import type { RenewOutcome } from '../lease.js';
import type { FinishReply, ResetReply } from '../scripts.js';
import type { Snapshot, StoredState } from '../state.js';

/**
 * The key's state where it lives: one master or one Cluster (`SingleStore`), or a quorum of independent
 * masters (`QuorumStore`, the redlock algorithm over the same scripts). The coordinator talks to this
 * and never learns which.
 */
export interface Store {
  readonly isQuorum: boolean;
  /** Takes the key when nobody leads it and attempts remain (one round trip); else says why not. */
  claim(names: KeyNames, args: ClaimRequest): Promise<Claim>;
  /** A snapshot, changing nothing. */
  read(names: KeyNames): Promise<Snapshot>;
  /** One renewal, answered within `withinMs` or counted as unanswered; never rejects. */
  /** One renewal; it needs only the lease's value (the standby renewer's thread knows no token). */
  renew(names: KeyNames, args: RenewRequest, withinMs: number): Promise<RenewOutcome>;
  complete(names: KeyNames, args: CompleteRequest): Promise<FinishReply>;
  fail(
    names: KeyNames,
    args: LeaseRef & { error: { name: string; message: string }; outcome: 'failed' | 'lease-lost' },
  ): Promise<FinishReply>;
  /** Gives back a claim whose fn never started: the replaced state comes back, no attempt is spent. */
  abandon(names: KeyNames, args: LeaseRef): Promise<FinishReply>;
  reset(names: KeyNames, args: { force: boolean; controlChannel: string }): Promise<ResetReply>;
  /** Resolves once writes this store started by itself (a quorum's late give-backs) have settled. */
  drain(): Promise<void>;
}

export interface ClaimRequest {
  leaseValue: string;
  leaseMs: number;
  owner: string;
  maxAttempts: number;
}

export interface LeaseRef {
  leaseValue: string;
  token: number;
}

export interface RenewRequest {
  leaseValue: string;
  leaseMs: number;
}

/** What an attempt records when fn returned: its value, how long to keep it, and who traced it. */
export interface CompleteRequest extends LeaseRef {
  /** The JSON text of the value; undefined when fn returned undefined. */
  valueJson: string | undefined;
  doneTtlMs: number | undefined;
  /** The leader call's traceparent (diagnostics.ts), kept with the value for followers' spans. */
  trace: string | undefined;
}

export type Claim =
  | {
      kind: 'claimed';
      token: number;
      attempt: number;
      startedAt: number;
      replaced: StoredState;
      /** What the attempt does with its lease from here to its end. */
      held: HeldLease;
    }
  | { kind: 'refused'; snapshot: Snapshot };

/**
 * A claim won, bound to its key and its lease: the attempt renews, completes, fails or gives back
 * through it, so one value travels from the claim to the attempt's end.
 */
export class HeldLease {
  constructor(
    private readonly store: Store,
    readonly names: KeyNames,
    private readonly ref: LeaseRef,
    private readonly leaseMs: number,
  ) {}

  /** The lease's own value: what a renewal on another thread must present (src/renewer). */
  get leaseValue(): string {
    return this.ref.leaseValue;
  }

  renew(withinMs: number): Promise<RenewOutcome> {
    return this.store.renew(this.names, { ...this.ref, leaseMs: this.leaseMs }, withinMs);
  }

  complete(
    valueJson: string | undefined,
    doneTtlMs: number | undefined,
    trace: string | undefined,
  ): Promise<FinishReply> {
    return this.store.complete(this.names, { ...this.ref, valueJson, doneTtlMs, trace });
  }

  fail(error: ErrorSummary, outcome: 'failed' | 'lease-lost'): Promise<FinishReply> {
    return this.store.fail(this.names, { ...this.ref, error, outcome });
  }

  abandon(): Promise<FinishReply> {
    return this.store.abandon(this.names, this.ref);
  }
}
