import createDebug from 'debug';
import type { Driver } from '../drivers/driver.js';
import { OnceForeignValueError, RedisUnavailableError } from '../errors.js';
import type { KeyNames } from '../keys.js';
import type { RenewOutcome } from '../lease.js';
import type { FinishReply, ResetReply } from '../scripts.js';
import * as scripts from '../scripts.js';
import type { Snapshot } from '../state.js';
import { withTimeout } from '../timeout.js';
import {
  type Claim,
  type ClaimRequest,
  type CompleteRequest,
  HeldLease,
  type LeaseRef,
  type RenewRequest,
  type Store,
} from './store.js';

const debug = createDebug('redis-once:store');

export interface ReplicaAck {
  replicas: number;
  timeoutMs: number;
}

/**
 * One master, or one Redis Cluster (a key's names share a hash tag, so each script runs on the key's
 * master): every operation is one script, one round trip.
 */
export class SingleStore implements Store {
  readonly isQuorum = false;
  private readonly sharded: boolean;
  private readonly givingBack = new Set<Promise<void>>();

  constructor(
    private readonly driver: Driver,
    private readonly replicaAck: ReplicaAck | undefined,
  ) {
    // A Cluster publishes completions with sharded pub/sub, on the key's own shard.
    this.sharded = driver.isCluster;
  }

  async claim(names: KeyNames, args: ClaimRequest): Promise<Claim> {
    let reply: scripts.ClaimReply;
    try {
      reply = await scripts.claim(this.driver, names, { ...args, token: undefined, sharded: this.sharded });
    } catch (error) {
      // No reply within our bound, yet the claim may still land (a client that queues or resends
      // it): a give-back sent after it, on the same client, undoes it if it does.
      if (error instanceof RedisUnavailableError) this.giveBackBlind(names, args.leaseValue);
      throw error;
    }
    if (reply.kind === 'stale') throw new Error('redis-once: the claim script refused a token it issued');
    // Waiting for replicas spends the lease's own time: never more than a fifth of it.
    if (reply.kind === 'refused') return reply;
    await this.acknowledge(names, 'the claim', Math.floor(args.leaseMs / 5));
    const { token, attempt, startedAt, replaced } = reply;
    const held = new HeldLease(this, names, { leaseValue: args.leaseValue, token }, args.leaseMs);
    return { kind: 'claimed', token, attempt, startedAt, replaced, held };
  }

  read(names: KeyNames): Promise<Snapshot> {
    return scripts.read(this.driver, names);
  }

  async renew(names: KeyNames, args: RenewRequest, withinMs: number): Promise<RenewOutcome> {
    try {
      const renewed = await withTimeout(
        scripts.renew(this.driver, names, args),
        Math.floor(withinMs),
        () => new Error('late'),
      );
      return renewed ? 'renewed' : 'refused';
    } catch (error) {
      // A foreign value where our lease was: not ours any more.
      if (error instanceof OnceForeignValueError) return 'refused';
      debug('%s: renewal not answered: %s', names.key, (error as Error).message);
      return 'unanswered';
    }
  }

  async complete(names: KeyNames, args: CompleteRequest): Promise<FinishReply> {
    const reply = await scripts.complete(this.driver, names, { ...args, sharded: this.sharded });
    if (reply.ok) await this.acknowledge(names, 'the done state');
    return reply;
  }

  fail(
    names: KeyNames,
    args: LeaseRef & { error: { name: string; message: string }; outcome: 'failed' | 'lease-lost' },
  ): Promise<FinishReply> {
    return scripts.fail(this.driver, names, { ...args, sharded: this.sharded });
  }

  abandon(names: KeyNames, args: LeaseRef): Promise<FinishReply> {
    return scripts.abandon(this.driver, names, { ...args, sharded: this.sharded });
  }

  reset(names: KeyNames, args: { force: boolean; controlChannel: string }): Promise<ResetReply> {
    return scripts.reset(this.driver, names, { ...args, sharded: this.sharded });
  }

  async drain(): Promise<void> {
    await Promise.allSettled([...this.givingBack]);
  }

  private giveBackBlind(names: KeyNames, leaseValue: string): void {
    const giving = scripts
      .abandon(this.driver, names, { leaseValue, token: undefined, sharded: this.sharded })
      .then(
        () => {},
        () => {},
      )
      .finally(() => this.givingBack.delete(giving));
    this.givingBack.add(giving);
  }

  /** With `replicaAck`: waits (bounded) for replicas to hold what we just wrote. Never throws. */
  private async acknowledge(
    names: KeyNames,
    what: string,
    atMostMs = Number.POSITIVE_INFINITY,
  ): Promise<void> {
    if (!this.replicaAck) return;
    const { replicas } = this.replicaAck;
    const timeoutMs = Math.max(1, Math.min(this.replicaAck.timeoutMs, atMostMs));
    const acked = await this.driver.waitForReplicas(names.state, replicas, timeoutMs).catch(() => 0);
    if (acked < replicas) debug('%s: %d of %d replica(s) acknowledged %s', names.key, acked, replicas, what);
  }
}
