import createDebug from 'debug';
import { OnceForeignValueError, RedisUnavailableError } from './errors.js';
import type { KeyNames } from './keys.js';
import type { RedisNode } from './redis-node.js';
import type { BeginReply, FinishReply, PublishCommand, ReadReply, ResetReply } from './scripts.js';

const debug = createDebug('redis-once:store');

import * as scripts from './scripts.js';

/**
 * The state of a key across every Redis master we were given: one master is a majority of one, so
 * standalone, Sentinel, Cluster and a quorum of independent masters all take this one code path.
 *
 * Every operation goes to all masters and settles as soon as a majority agrees. Masters that disagree
 * are reconciled by the highest fencing token, and `done` counts only when a majority holds it with
 * that token; anything less reads as the attempt still running, so a takeover finishes the job.
 */
export class Store {
  readonly majority: number;

  constructor(
    private readonly nodes: readonly RedisNode[],
    readonly publish: PublishCommand,
    private readonly replicaAck?: { replicas: number; timeoutMs: number },
  ) {
    this.majority = Math.floor(nodes.length / 2) + 1;
  }

  get isQuorum(): boolean {
    return this.nodes.length > 1;
  }

  async read(names: KeyNames): Promise<ReadReply> {
    const answers = await this.gather(
      names.key,
      'reading',
      async (node) => ({ node, reply: await scripts.readState(node, names) }),
      (all) => this.conclusive(all.map((answer) => answer.reply)),
    );
    const replies = answers.map((answer) => answer.reply);
    const reconciled = reconcile(replies, this.majority);
    return (await this.repair(names, answers, reconciled)) ?? reconciled;
  }

  /**
   * Read-repair, on a quorum: when the newest state any master holds is `done`, but fewer than a
   * majority hold it (a master restarted empty, or missed the write), copy it to the masters behind it.
   * Nothing newer can exist elsewhere: a later attempt would have raised the token on a majority, and
   * any majority shares a master with the one we read. Resolves the done snapshot once a majority
   * holds it, or undefined.
   */
  private async repair(
    names: KeyNames,
    answers: Array<{ node: RedisNode; reply: ReadReply }>,
    reconciled: ReadReply,
  ): Promise<ReadReply | undefined> {
    if (!this.isQuorum || reconciled.state.status === 'done') return undefined;
    const token = Math.max(...answers.map((answer) => answer.reply.state.token));
    const newest = answers.find(
      (a) => a.reply.state.token === token && a.reply.state.status === 'done',
    )?.reply;
    if (!newest) return undefined;
    const holds = (reply: ReadReply) => reply.state.status === 'done' && reply.state.token === token;
    // Behind: an older token, or this attempt's token without its completion.
    const behind = answers.filter((answer) => !holds(answer.reply) && answer.reply.state.token <= token);
    const copied = await Promise.all(
      behind.map((answer) =>
        scripts
          .repairDone(answer.node, names, {
            token,
            ttlMs: newest.statePttl,
            fields: newest.fields,
          })
          .catch(() => false),
      ),
    );
    const holding = answers.filter((answer) => holds(answer.reply)).length + copied.filter(Boolean).length;
    debug(
      '%s: repaired %d lagging master(s); %d hold the done state',
      names.key,
      copied.filter(Boolean).length,
      holding,
    );
    return holding >= this.majority ? { ...newest, leasePttl: reconciled.leasePttl } : undefined;
  }

  async begin(names: KeyNames, args: Parameters<typeof scripts.begin>[2]): Promise<BeginReply> {
    const replies = await this.gather(
      names.key,
      'beginning',
      (node) => scripts.begin(node, names, args),
      this.okMajority,
    );
    const refusal = worstRefusal(replies);
    if (replies.filter(isOk).length < this.majority && refusal) return refusal;
    await this.acknowledge(names.key, 'the lease and the running state');
    return { ok: true, startedAt: startedAt(replies) };
  }

  async complete(names: KeyNames, args: Parameters<typeof scripts.complete>[2]): Promise<FinishReply> {
    const reply = await this.finish(names, 'completing', (node) => scripts.complete(node, names, args));
    if (reply.ok) await this.acknowledge(names.key, 'the done state');
    return reply;
  }

  async fail(names: KeyNames, args: Parameters<typeof scripts.fail>[2]): Promise<FinishReply> {
    return this.finish(names, 'recording the failure', (node) => scripts.fail(node, names, args));
  }

  async reset(names: KeyNames, args: { force: boolean; controlChannel: string }): Promise<ResetReply> {
    const replies = await this.gather(
      names.key,
      'resetting',
      (node) => scripts.reset(node, names, { ...args, publish: this.publish }),
      this.okMajority,
    );
    const busy = replies.find((reply): reply is Extract<ResetReply, { ok: false }> => !reply.ok);
    if (busy && replies.filter(isOk).length < this.majority) return busy;
    return { ok: true, existed: replies.some((reply) => reply.ok && reply.existed) };
  }

  /** With `replicaAck`: waits (bounded) for replicas to hold what we just wrote. Never throws. */
  private async acknowledge(key: string, what: string): Promise<void> {
    if (!this.replicaAck) return;
    const { replicas, timeoutMs } = this.replicaAck;
    await Promise.all(
      this.nodes.map(async (node) => {
        const acked = await node.acknowledged(replicas, timeoutMs, key).catch(() => 0);
        if (acked < replicas)
          debug('%s: %d of %d replica(s) acknowledged %s on %s', key, acked, replicas, what, node.label);
      }),
    );
  }

  /** Writes settle once a majority applied them. */
  private readonly okMajority = (replies: Array<{ ok: boolean }>): boolean =>
    replies.filter(isOk).length >= this.majority;

  /**
   * Reads settle once a majority answered and agrees: on one master, at once; on a quorum, when a
   * majority reports the same status and token. A master that lost its data (or missed a write)
   * disagrees, and then we wait for the others, so its answer cannot hide a majority's `done`.
   */
  private conclusive(replies: ReadReply[]): boolean {
    if (replies.length < this.majority) return false;
    if (majorityDone(replies, this.majority)) return true;
    const best = reconcile(replies, this.majority).state;
    return (
      replies.filter((r) => r.state.status === best.status && r.state.token === best.token).length >=
      this.majority
    );
  }

  private async finish(
    names: KeyNames,
    what: string,
    op: (node: RedisNode) => Promise<FinishReply>,
  ): Promise<FinishReply> {
    const replies = await this.gather(names.key, what, op, this.okMajority);
    if (replies.filter(isOk).length >= this.majority) return { ok: true };
    return replies.find((reply) => !reply.ok) ?? { ok: false, reason: 'changed' };
  }

  /**
   * Runs `op` on every master and resolves with the replies as soon as they are `settled` (or every
   * reachable master has answered). Rejects with RedisUnavailableError when a majority can
   * no longer answer; a foreign value on any master rejects at once. Late replies are dropped.
   */
  private gather<T>(
    key: string,
    what: string,
    op: (node: RedisNode) => Promise<T>,
    settled: (replies: T[]) => boolean,
  ): Promise<T[]> {
    return new Promise<T[]>((resolve, reject) => {
      const replies: T[] = [];
      const errors: unknown[] = [];
      let done = false;
      const check = () => {
        if (done) return;
        const pending = this.nodes.length - replies.length - errors.length;
        if (settled(replies)) {
          done = true;
          resolve(replies);
        } else if (this.nodes.length - errors.length < this.majority) {
          done = true;
          reject(unavailable(key, what, errors, this.nodes.length, this.majority));
        } else if (pending === 0) {
          // Everyone reachable answered without settling it: the disagreement is the answer.
          done = true;
          resolve(replies);
        }
      };
      for (const node of this.nodes) {
        op(node).then(
          (reply) => {
            replies.push(reply);
            check();
          },
          (error: unknown) => {
            if (error instanceof OnceForeignValueError && !done) {
              done = true;
              reject(error);
              return;
            }
            errors.push(error);
            check();
          },
        );
      }
    });
  }
}

function isOk(reply: { ok: boolean }): boolean {
  return reply.ok;
}

function unavailable(key: string, what: string, errors: unknown[], size: number, majority: number): Error {
  if (size === 1 && errors[0] instanceof RedisUnavailableError) return errors[0];
  return new RedisUnavailableError(
    `Only ${size - errors.length} of ${size} Redis masters answered ${what} "${key}"; ${majority} are needed.`,
    { key, cause: errors[0] },
  );
}

/** Picks the reply with the highest token; `done` only when a majority agrees on it. */
function reconcile(replies: ReadReply[], majority: number): ReadReply {
  const fence = Math.max(...replies.map((reply) => reply.fence));
  const serverMicros = Math.max(...replies.map((reply) => reply.serverMicros));
  // The lease counts as held while a majority of masters still hold it.
  const pttls = replies.map((reply) => reply.leasePttl).sort((a, b) => b - a);
  const leasePttl = pttls[majority - 1] ?? -2;
  // A done state a majority holds is the answer, whatever a lagging minority says.
  const done = majorityDone(replies, majority);
  if (done) return { ...done, leasePttl, fence, serverMicros };
  let best = replies[0]!;
  for (const reply of replies) if (reply.state.token > best.state.token) best = reply;
  // Done on a minority only does not count: the attempt reads as still running, to be taken over.
  const state =
    best.state.status === 'done'
      ? { ...best.state, status: 'running' as const, valueJson: undefined }
      : best.state;
  return { ...best, state, leasePttl, fence, serverMicros };
}

function majorityDone(replies: ReadReply[], majority: number): ReadReply | undefined {
  return replies.find(
    (reply) =>
      reply.state.status === 'done' &&
      replies.filter((other) => other.state.status === 'done' && other.state.token === reply.state.token)
        .length >= majority,
  );
}

function worstRefusal(replies: BeginReply[]): Exclude<BeginReply, { ok: true }> | undefined {
  const refusals = replies.filter((reply): reply is Exclude<BeginReply, { ok: true }> => !reply.ok);
  // A key already done outranks every other refusal: the caller should return its value.
  return (
    refusals.find((r) => r.reason === 'done') ?? refusals.find((r) => r.reason === 'stale') ?? refusals[0]
  );
}

function startedAt(replies: BeginReply[]): number {
  for (const reply of replies) if (reply.ok) return reply.startedAt;
  return Date.now();
}
