import { createHash } from 'node:crypto';
import { OnceForeignValueError } from './errors.js';
import type { KeyNames } from './keys.js';
import beginLua from './lua/begin-3.lua';
import completeLua from './lua/complete-2.lua';
import failLua from './lua/fail-2.lua';
import ownKeysLua from './lua/includes/own-keys.lua';
import readLua from './lua/read-3.lua';
import repairLua from './lua/repair-2.lua';
import resetLua from './lua/reset-3.lua';
import type { RedisNode } from './redis-node.js';
import { decodeState, type StoredState } from './state.js';

/**
 * Typed wrappers over `src/lua/*.lua`: one function per script, and the only place that decodes
 * script replies. Every reply code a script documents in its header is turned into a value here.
 *
 * Scripts are called by SHA (EVALSHA) and loaded on NOSCRIPT. A SHA names the exact source, so two
 * versions of redis-once sharing one Redis during a rolling deploy never run each other's scripts.
 */
export class LuaScript {
  readonly source: string;
  readonly sha: string;

  constructor(
    readonly name: string,
    body: string,
    readonly numberOfKeys: number,
  ) {
    // Scripts that read our keys share the functions that refuse foreign values (includes/own-keys.lua).
    this.source = /\b(own\w+|serverMs)\(/.test(body) ? `${ownKeysLua}\n${body}` : body;
    this.sha = createHash('sha1').update(this.source).digest('hex');
  }

  async run(node: RedisNode, key: string, keys: string[], args: (string | number)[]): Promise<unknown> {
    return node.call(this.name, key, async (client) => {
      try {
        return await client.evalsha(this.sha, this.numberOfKeys, ...keys, ...args);
      } catch (error) {
        if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
        return client.eval(this.source, this.numberOfKeys, ...keys, ...args);
      }
    });
  }
}

export const scripts = {
  read: new LuaScript('read', readLua, 3),
  begin: new LuaScript('begin', beginLua, 3),
  complete: new LuaScript('complete', completeLua, 2),
  fail: new LuaScript('fail', failLua, 2),
  reset: new LuaScript('reset', resetLua, 3),
  repair: new LuaScript('repair', repairLua, 2),
} as const;

/** The publish commands the scripts take: sharded pub/sub keeps a Cluster's messages on one shard. */
export type PublishCommand = 'PUBLISH' | 'SPUBLISH';

export interface ReadReply {
  state: StoredState;
  /** The state hash as stored (flat HGETALL), to copy it to a lagging quorum master. */
  fields: string[];
  /** ms the lease has left, or -2 when nobody holds it. */
  leasePttl: number;
  /** The last fencing token issued. */
  fence: number;
  /** The server's clock in microseconds. */
  serverMicros: number;
  /** ms the state has left; -1 when it does not expire. */
  statePttl: number;
}

export async function readState(node: RedisNode, names: KeyNames): Promise<ReadReply> {
  const reply = (await scripts.read.run(
    node,
    names.key,
    [names.state, names.lease, names.fence],
    [],
  )) as unknown[];
  throwIfForeign(reply, names, [names.state, names.lease, names.fence]);
  const [, fields, leasePttl, fence, seconds, micros, statePttl] = reply;
  return {
    state: decodeState(fields),
    fields: Array.isArray(fields) ? fields.map(String) : [],
    leasePttl: Number(leasePttl),
    fence: Number(fence),
    serverMicros: Number(seconds) * 1_000_000 + Number(micros),
    statePttl: Number(statePttl),
  };
}

export type BeginReply =
  | { ok: true; startedAt: number }
  | { ok: false; reason: 'not-holder' | 'done' | 'changed' }
  | { ok: false; reason: 'stale'; fence: number };

export async function begin(
  node: RedisNode,
  names: KeyNames,
  args: { leaseValue: string; expectedToken: number; newToken: number; attempt: number; owner: string },
): Promise<BeginReply> {
  const reply = (await scripts.begin.run(
    node,
    names.key,
    [names.state, names.lease, names.fence],
    [
      args.leaseValue,
      args.expectedToken === 0 ? '' : String(args.expectedToken),
      String(args.newToken),
      String(args.attempt),
      args.owner,
    ],
  )) as unknown[];
  throwIfForeign(reply, names, [names.state, names.lease, names.fence]);
  switch (Number(reply[0])) {
    case 0:
      return { ok: true, startedAt: Number(reply[1]) };
    case -1:
      return { ok: false, reason: 'not-holder' };
    case -2:
      return { ok: false, reason: 'done' };
    case -3:
      return { ok: false, reason: 'changed' };
    case -4:
      return { ok: false, reason: 'stale', fence: Number(reply[1]) };
    default:
      throw unexpected('begin', reply);
  }
}

export type FinishReply = { ok: true } | { ok: false; reason: 'not-holder' | 'changed' };

export async function complete(
  node: RedisNode,
  names: KeyNames,
  args: {
    leaseValue: string;
    token: number;
    valueJson: string | undefined;
    doneTtlMs: number | undefined;
    publish: PublishCommand;
  },
): Promise<FinishReply> {
  const reply = (await scripts.complete.run(
    node,
    names.key,
    [names.state, names.lease],
    [
      args.leaseValue,
      String(args.token),
      args.valueJson ?? '',
      args.valueJson === undefined ? '0' : '1',
      String(args.doneTtlMs ?? 0),
      names.done,
      args.publish,
    ],
  )) as unknown[];
  throwIfForeign(reply, names, [names.state, names.lease]);
  return finishReply('complete', reply);
}

export async function fail(
  node: RedisNode,
  names: KeyNames,
  args: {
    leaseValue: string;
    token: number;
    error: { name: string; message: string };
    outcome: 'failed' | 'lease-lost';
    publish: PublishCommand;
  },
): Promise<FinishReply> {
  const reply = (await scripts.fail.run(
    node,
    names.key,
    [names.state, names.lease],
    [args.leaseValue, String(args.token), JSON.stringify(args.error), args.outcome, names.done, args.publish],
  )) as unknown[];
  throwIfForeign(reply, names, [names.state, names.lease]);
  return finishReply('fail', reply);
}

export type ResetReply =
  | { ok: true; existed: boolean }
  | { ok: false; reason: 'busy'; owner: string | undefined };

export async function reset(
  node: RedisNode,
  names: KeyNames,
  args: { force: boolean; publish: PublishCommand; controlChannel: string },
): Promise<ResetReply> {
  const reply = (await scripts.reset.run(
    node,
    names.key,
    [names.state, names.lease, names.fence],
    [args.force ? '1' : '0', names.done, args.publish, args.controlChannel, names.key],
  )) as unknown[];
  throwIfForeign(reply, names, [names.state, names.lease, names.fence]);
  switch (Number(reply[0])) {
    case 0:
      return { ok: true, existed: Number(reply[1]) === 1 };
    case -5:
      return { ok: false, reason: 'busy', owner: reply[1] ? String(reply[1]) : undefined };
    default:
      throw unexpected('reset', reply);
  }
}

/** Copies a done state to a master behind it (a quorum's read-repair); true when copied. */
export async function repairDone(
  node: RedisNode,
  names: KeyNames,
  args: { token: number; ttlMs: number; fields: string[] },
): Promise<boolean> {
  const reply = (await scripts.repair.run(
    node,
    names.key,
    [names.state, names.fence],
    [String(args.token), String(args.ttlMs > 0 ? args.ttlMs : -1), ...args.fields],
  )) as unknown[];
  throwIfForeign(reply, names, [names.state, names.fence]);
  return Number(reply[0]) === 0;
}

function finishReply(script: string, reply: unknown[]): FinishReply {
  switch (Number(reply[0])) {
    case 0:
      return { ok: true };
    case -1:
      return { ok: false, reason: 'not-holder' };
    case -3:
      return { ok: false, reason: 'changed' };
    default:
      throw unexpected(script, reply);
  }
}

/** Code -10 (see includes/own-keys.lua): KEYS[which] holds a value we did not write. */
function throwIfForeign(reply: unknown[], names: KeyNames, keys: string[]): void {
  if (Number(reply[0]) !== -10) return;
  throw new OnceForeignValueError({
    key: names.key,
    redisKey: keys[Number(reply[1]) - 1] ?? names.state,
    detail: String(reply[2]),
  });
}

function unexpected(script: string, reply: unknown): Error {
  return new Error(`redis-once: unexpected reply from the ${script} script: ${JSON.stringify(reply)}`);
}
