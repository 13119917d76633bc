import createDebug from 'debug';
import { decide } from '../decide.js';
import type { Driver } from '../drivers/driver.js';
import { OnceForeignValueError, RedisUnavailableError } from '../errors.js';
import type { KeyNames } from '../keys.js';
import type { RenewOutcome } from '../lease.js';
import type { ClaimReply, FinishReply, ResetReply } from '../scripts.js';
import * as scripts from '../scripts.js';
import type { Snapshot } from '../state.js';
import {
  type Claim,
  type ClaimRequest,
  type CompleteRequest,
  HeldLease,
  type LeaseRef,
  type RenewRequest,
  type Store,
} from '../store/store.js';
import { reconcile, seenAlike } from './reconcile.js';

const debug = createDebug('redis-once:quorum');

/**
 * A quorum of independent masters: the redlock algorithm, applied to the same scripts as one master.
 *
 * - A claim goes to every master with one proposed token and counts once a majority took it; the
 *   lease's validity is the coordinator's (sent-at + TTL − drift, monotonic). Masters that took a claim
 *   that did not reach a majority (or arrived too late) give it back (`abandon`): no attempt is spent
 *   on them.
 * - Every write counts once a majority applied it; reads wait for a majority to agree (or for every
 *   reachable master) and are reconciled by `reconcile.ts`, with read-repair of a done state.
 * - With no reachable majority, calls reject with RedisUnavailableError at once: a master that is down
 *   is not waited for.
 */
export class QuorumStore implements Store {
  readonly isQuorum = true;
  private readonly majority: number;
  private lastToken = 0;
  /** Claims in flight and claims being given back (some land after we decided): close() waits. */
  private readonly settling = new Set<Promise<void>>();

  constructor(private readonly drivers: readonly Driver[]) {
    this.majority = Math.floor(drivers.length / 2) + 1;
  }

  async claim(names: KeyNames, args: ClaimRequest): Promise<Claim> {
    let token = this.proposeToken(0);
    for (let round = 0; ; round++) {
      const outcome = await this.claimOnce(names, args, token);
      if (outcome.kind !== 'stale' || round === 2)
        return outcome.kind === 'stale' ? outcome.refused : outcome;
      // A master's counter is ahead of our clock: propose above it.
      token = this.proposeToken(outcome.fence);
    }
  }

  private async claimOnce(
    names: KeyNames,
    args: ClaimRequest,
    token: number,
  ): Promise<Claim | { kind: 'stale'; fence: number; refused: Claim }> {
    // Masters that took this claim, as their replies arrive (also after the decision below).
    const took = new Map<Driver, Extract<ClaimReply, { kind: 'claimed' }>>();
    // Which master each reply came from, in the order the replies arrived (gather keeps that order).
    const repliedBy: Driver[] = [];
    let gaveUp = false;
    const giveBack = (driver: Driver): Promise<void> => {
      const giving = scripts
        .abandon(driver, names, { leaseValue: args.leaseValue, token, sharded: false })
        .then(
          () => {},
          (error: unknown) => debug('%s: abandon on %s: %s', names.key, driver.label, errorText(error)),
        )
        .finally(() => this.settling.delete(giving));
      this.settling.add(giving);
      return giving;
    };
    const claiming = this.gather(
      names.key,
      'claiming',
      async (driver) => {
        const request = scripts.claim(driver, names, { ...args, token, sharded: false });
        // A claim may land after we decided: close() waits for it, and for its give-back.
        const tracked = request.then(
          () => {},
          () => {},
        );
        this.settling.add(tracked);
        void tracked.finally(() => this.settling.delete(tracked));
        let reply: ClaimReply;
        try {
          reply = await request;
        } catch (error) {
          // Unanswered in time, it may still land (a client that queues or resends): give it back after.
          if (error instanceof RedisUnavailableError) giveBack(driver);
          throw error;
        }
        repliedBy.push(driver);
        if (reply.kind === 'claimed') {
          took.set(driver, reply);
          // A claim that lands after we gave up counts for nothing: give it back.
          if (gaveUp) giveBack(driver);
        }
        return reply;
      },
      // The answers, taken as the key before the claim, agree (else wait for every master): a majority
      // that took the claim is not enough, since a master may hold a reset or a done the others lack.
      (all) => this.conclusive(this.before(all).map((a) => a.snapshot)),
      undefined,
      {
        // But once a majority took it and the masters that answered have seen the same newest attempt,
        // a master that does not answer (partitioned) is waited for only a few of the others' round
        // trips: the lease is running. Where they saw different attempts, one lost data or missed
        // writes, and the last master may hold what decides (a done): it is waited for.
        when: (all) =>
          count(all, (r) => r.kind === 'claimed') >= this.majority &&
          seenAlike(this.before(all).map((a) => a.snapshot)),
        graceMs: (elapsedMs) => Math.min(args.leaseMs / 5, Math.max(25, 3 * elapsedMs)),
      },
    );
    let replies: ClaimReply[];
    try {
      replies = await claiming;
    } catch (error) {
      // No majority can answer: what a minority took is given back, so no attempt is spent there.
      gaveUp = true;
      await Promise.all([...took.keys()].map(giveBack));
      throw error;
    }
    const answers = this.before(replies).map(({ index, snapshot }) => ({
      driver: repliedBy[index]!,
      snapshot,
    }));
    // Lead only where the reconciled key says so: a reset a master missed counts for nothing, and a done
    // that read-repair would restore is done.
    const { snapshot: before, repair } = reconcile(
      answers.map((a) => a.snapshot),
      this.majority,
    );
    const decision = decide(before, args.maxAttempts);
    if (took.size >= this.majority && !repair && decision.kind === 'lead') {
      return {
        kind: 'claimed',
        token,
        attempt: decision.attempt,
        startedAt: Math.min(...[...took.values()].map((t) => t.startedAt)),
        replaced: before.state,
        held: new HeldLease(this, names, { leaseValue: args.leaseValue, token }, args.leaseMs),
      };
    }
    gaveUp = true;
    // Given back before we look again, so our own claim is not what the next look finds.
    await Promise.all([...took.keys()].map(giveBack));
    const refused: Claim = {
      kind: 'refused',
      snapshot: answers.length > 0 ? await this.view(names, answers) : heldByNobody(),
    };
    const stale = replies.flatMap((r) => (r.kind === 'stale' ? [r.fence] : []));
    if (stale.length > 0 && count(replies, (r) => r.kind === 'refused') < this.majority) {
      return { kind: 'stale', fence: Math.max(...stale), refused };
    }
    return refused;
  }

  async read(names: KeyNames): Promise<Snapshot> {
    const answers = await this.gather(
      names.key,
      'reading',
      async (driver) => ({ driver, snapshot: await scripts.read(driver, names) }),
      (all) => this.conclusive(all.map((a) => a.snapshot)),
    );
    return this.view(names, answers);
  }

  /**
   * The reconciled view of the masters' answers, after read-repair: when the newest attempt is done on
   * fewer than a majority, its state is copied to the masters behind it, and it is done once a
   * majority holds it.
   */
  private async view(
    names: KeyNames,
    answers: Array<{ driver: Driver; snapshot: Snapshot }>,
  ): Promise<Snapshot> {
    const { snapshot, repair } = reconcile(
      answers.map((a) => a.snapshot),
      this.majority,
    );
    if (!repair) return snapshot;
    const source = answers[repair.from]!.snapshot;
    const copied = await Promise.all(
      repair.to.map((i) => scripts.repair(answers[i]!.driver, names, source).catch(() => false)),
    );
    const holding =
      count(
        answers,
        (a) => a.snapshot.state.status === 'done' && a.snapshot.state.token === source.state.token,
      ) + count(copied, Boolean);
    debug(
      '%s: read-repair copied the done state to %d master(s); %d hold it',
      names.key,
      count(copied, Boolean),
      holding,
    );
    return holding >= this.majority
      ? { ...source, leasePttl: snapshot.leasePttl, fence: snapshot.fence }
      : snapshot;
  }

  async renew(names: KeyNames, args: RenewRequest, withinMs: number): Promise<RenewOutcome> {
    const bounded = Math.max(0, withinMs);
    const replies = await this.gather(
      names.key,
      'renewing',
      (driver) => scripts.renew(driver, names, args),
      (all) =>
        count(all, Boolean) >= this.majority || count(all, (r) => !r) > this.drivers.length - this.majority,
      bounded,
    ).catch(() => [] as boolean[]);
    if (count(replies, Boolean) >= this.majority) return 'renewed';
    if (count(replies, (r) => !r) > this.drivers.length - this.majority) return 'refused';
    return 'unanswered';
  }

  complete(names: KeyNames, args: CompleteRequest): Promise<FinishReply> {
    return this.write(names.key, 'completing', (driver) =>
      scripts.complete(driver, names, { ...args, sharded: false }),
    );
  }

  fail(
    names: KeyNames,
    args: LeaseRef & { error: { name: string; message: string }; outcome: 'failed' | 'lease-lost' },
  ): Promise<FinishReply> {
    return this.write(names.key, 'recording the failure', (driver) =>
      scripts.fail(driver, names, { ...args, sharded: false }),
    );
  }

  abandon(names: KeyNames, args: LeaseRef): Promise<FinishReply> {
    return this.write(names.key, 'giving back the claim', (driver) =>
      scripts.abandon(driver, names, { ...args, sharded: false }),
    );
  }

  async reset(names: KeyNames, args: { force: boolean; controlChannel: string }): Promise<ResetReply> {
    const replies = await this.gather(
      names.key,
      'resetting',
      (driver) => scripts.reset(driver, names, { ...args, sharded: false }),
      (all) => count(all, (r) => r.ok) >= this.majority,
    );
    const done = replies.filter((r): r is Extract<ResetReply, { ok: true }> => r.ok);
    if (done.length < this.majority) {
      const busy = replies.find((r): r is Extract<ResetReply, { ok: false }> => !r.ok);
      if (busy) return busy;
    }
    return {
      ok: true,
      existed: done.some((r) => r.existed),
      fence: Math.max(0, ...done.map((r) => r.fence)),
    };
  }

  async drain(): Promise<void> {
    // A claim that lands now is given back, which adds to the set: go until it is empty.
    while (this.settling.size > 0) await Promise.allSettled([...this.settling]);
  }

  /** A token above every one this process proposed, above `floor`, and near the clock (in µs). */
  private proposeToken(floor: number): number {
    this.lastToken = Math.max(Date.now() * 1000, this.lastToken + 1, floor + 1);
    return this.lastToken;
  }

  /**
   * The key as each master had it before our claim: a refusal's snapshot, or what a claim replaced. (A
   * stale reply read no state: its counter is ahead of our proposal, and we propose again.)
   *
   * Once a majority took the claim, a refusal because of a live lease is left out: no other attempt can
   * hold a majority beside ours, so that lease is another node's claim half-way through the masters,
   * which it will give back — not an attempt, and not a crash. What a real attempt left (running,
   * failed, done) is also on the masters that took our claim.
   */
  private before(replies: readonly ClaimReply[]): Array<{ index: number; snapshot: Snapshot }> {
    const tookMajority = count(replies, (r) => r.kind === 'claimed') >= this.majority;
    return replies.flatMap((reply, index) => {
      const snapshot = asSnapshot(reply);
      if (!snapshot || (tookMajority && reply.kind === 'refused' && snapshot.leasePttl > 0)) return [];
      return [{ index, snapshot }];
    });
  }

  /**
   * Reads settle once a majority answered and agrees: a majority reports the same status and token, or
   * a majority holds one done state. A master that lost its data (or missed a write) disagrees, and
   * then we wait for the others, so its answer cannot hide a majority's state.
   */
  private conclusive(snapshots: Snapshot[]): boolean {
    if (snapshots.length < this.majority) return false;
    const best = reconcile(snapshots, this.majority).snapshot.state;
    return (
      count(snapshots, (s) => s.state.status === best.status && s.state.token === best.token) >= this.majority
    );
  }

  private async write(
    key: string,
    what: string,
    op: (driver: Driver) => Promise<FinishReply>,
  ): Promise<FinishReply> {
    const replies = await this.gather(key, what, op, (all) => count(all, (r) => r.ok) >= this.majority);
    if (count(replies, (r) => r.ok) >= this.majority) return { ok: true };
    return replies.find((r) => !r.ok) ?? { ok: false, reason: 'not-running' };
  }

  /**
   * Runs `op` on every master; resolves with the replies as soon as `settled` says so, or once every
   * master that can answer has. Rejects with RedisUnavailableError once a majority can no longer
   * answer (or, given `withinMs`, has not in time); a foreign value on any master rejects at once.
   */
  private gather<T>(
    key: string,
    what: string,
    op: (driver: Driver) => Promise<T>,
    settled: (replies: T[]) => boolean,
    withinMs?: number,
    soon?: { when: (replies: T[]) => boolean; graceMs: (elapsedMs: number) => number },
  ): Promise<T[]> {
    return new Promise<T[]>((resolve, reject) => {
      const replies: T[] = [];
      const errors: unknown[] = [];
      const startedAt = performance.now();
      let open = true;
      let grace: NodeJS.Timeout | undefined;
      const finish = (settle: () => void) => {
        open = false;
        clearTimeout(timer);
        clearTimeout(grace);
        settle();
      };
      const timer =
        withinMs === undefined
          ? undefined
          : setTimeout(() => finish(() => resolve(replies.slice())), Math.floor(withinMs)).unref();
      const check = () => {
        if (!open) return;
        if (!grace && soon?.when(replies)) {
          const graceMs = Math.floor(soon.graceMs(performance.now() - startedAt));
          grace = setTimeout(() => finish(() => resolve(replies.slice())), graceMs).unref();
        }
        if (settled(replies)) finish(() => resolve(replies.slice()));
        else if (this.drivers.length - errors.length < this.majority)
          finish(() => reject(unavailable(key, what, errors, this.drivers.length, this.majority)));
        else if (replies.length + errors.length === this.drivers.length)
          finish(() => resolve(replies.slice())); // everyone answered: the disagreement is the answer
      };
      for (const driver of this.drivers) {
        op(driver).then(
          (reply) => {
            replies.push(reply);
            check();
          },
          (error: unknown) => {
            if (error instanceof OnceForeignValueError && open) return finish(() => reject(error));
            errors.push(error);
            check();
          },
        );
      }
    });
  }
}

/** A claim reply as the snapshot of the key before it: a refusal says it; a claim says what it replaced. */
function asSnapshot(reply: ClaimReply): Snapshot | undefined {
  if (reply.kind === 'refused') return reply.snapshot;
  if (reply.kind === 'claimed')
    return { state: reply.replaced, leasePttl: -2, statePttl: -1, fence: reply.replacedFence };
  return undefined;
}

function heldByNobody(): Snapshot {
  return reconcile([], 1).snapshot;
}

function count<T>(items: readonly T[], test: (item: T) => boolean): number {
  let n = 0;
  for (const item of items) if (test(item)) n++;
  return n;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function unavailable(key: string, what: string, errors: unknown[], size: number, majority: number): Error {
  return new RedisUnavailableError(
    `Only ${size - errors.length} of ${size} Redis masters answered ${what} "${key}"; ${majority} are needed.`,
    { key, cause: errors[0] },
  );
}
