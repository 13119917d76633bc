import { createHash } from 'node:crypto';
import { OnceForeignValueError } from './errors.js';
import type { KeyNames } from './keys.js';
import abandonLua from './lua/abandon-2.lua';
import claimLua from './lua/claim-3.lua';
import completeLua from './lua/complete-2.lua';
import failLua from './lua/fail-2.lua';
import ownKeysLua from './lua/includes/own-keys.lua';
import readLua from './lua/read-3.lua';
import renewLua from './lua/renew-1.lua';
import repairLua from './lua/repair-2.lua';
import resetLua from './lua/reset-3.lua';
import { decodeState, type Snapshot, type StoredState } from './state.js';

/**
 * Typed calls of `src/lua/*.lua`: one function per script, and the only place that decodes their
 * replies (through one table of reply codes). Every script opens with a header listing its KEYS, ARGV
 * and replies; a test holds each header to the wrapper here.
 *
 * Scripts are called by SHA (EVALSHA, loaded on NOSCRIPT by the driver). A SHA names the exact source,
 * so two versions of redis-once sharing one Redis during a rolling deploy never run each other's.
 */
export class LuaScript {
  readonly source: string;
  readonly sha: string;
  /** numberOfKeys as EVALSHA's argument. */
  readonly keyCount: string;

  constructor(
    readonly name: string,
    body: string,
    readonly numberOfKeys: number,
  ) {
    this.source = expandIncludes(body);
    this.sha = createHash('sha1').update(this.source).digest('hex');
    this.keyCount = String(numberOfKeys);
  }
}

/** What runs a script: a driver for one master (or one Cluster). */
export interface ScriptRunner {
  /** EVALSHA, with the script loaded on NOSCRIPT; bounded in time; rejects with our error classes. */
  evalScript(script: LuaScript, keys: readonly string[], args: readonly string[]): Promise<unknown>;
}

const INCLUDES: Record<string, string> = { 'own-keys': ownKeysLua };

/** `-- @include <name>` lines are replaced by the include's source; any other name is a bug. */
function expandIncludes(body: string): string {
  return body.replace(/^-- @include (\S+)$/gm, (_, name: string) => {
    const source = INCLUDES[name];
    if (source === undefined) throw new Error(`redis-once: unknown Lua include "${name}"`);
    return source;
  });
}

export const scripts = {
  claim: new LuaScript('claim', claimLua, 3),
  read: new LuaScript('read', readLua, 3),
  renew: new LuaScript('renew', renewLua, 1),
  complete: new LuaScript('complete', completeLua, 2),
  fail: new LuaScript('fail', failLua, 2),
  abandon: new LuaScript('abandon', abandonLua, 2),
  reset: new LuaScript('reset', resetLua, 3),
  repair: new LuaScript('repair', repairLua, 2),
} as const;

/**
 * The reply codes every script shares (the first element of its reply). Negative codes are refusals;
 * -10 is a foreign value at one of our keys, turned into OnceForeignValueError by `decode` below.
 */
const CODES = {
  1: 'claimed',
  0: 'ok',
  [-1]: 'not-holder',
  [-3]: 'not-running',
  [-4]: 'stale',
  [-5]: 'busy',
  [-10]: 'foreign',
} as const;
type Code = (typeof CODES)[keyof typeof CODES];

/** Which of our keys a script's `which` (in a -10 reply) names: 1 state, 2 lease, 3 fence. */
function foreignKey(names: KeyNames, which: number): string {
  return which === 2 ? names.lease : which === 3 ? names.fence : names.state;
}

function decode(script: LuaScript, names: KeyNames, reply: unknown): { code: Code; rest: unknown[] } {
  if (!Array.isArray(reply)) throw unexpected(script, reply);
  const code = CODES[Number(reply[0]) as keyof typeof CODES];
  if (code === undefined) throw unexpected(script, reply);
  if (code === 'foreign') {
    throw new OnceForeignValueError({
      key: names.key,
      redisKey: foreignKey(names, Number(reply[1])),
      detail: String(reply[2]),
    });
  }
  return { code, rest: reply.slice(1) };
}

function unexpected(script: LuaScript, reply: unknown): Error {
  return new Error(`redis-once: unexpected reply from the ${script.name} script: ${JSON.stringify(reply)}`);
}

function snapshotOf(rest: unknown[]): Snapshot {
  const [fields, leasePttl, statePttl, fence] = rest;
  return {
    state: decodeState(fields),
    leasePttl: Number(leasePttl),
    statePttl: Number(statePttl),
    fence: Number(fence),
  };
}

export type ClaimReply =
  | {
      kind: 'claimed';
      token: number;
      attempt: number;
      startedAt: number;
      /** The state the claim replaced, and the counter before it: the key as it was. */
      replaced: StoredState;
      replacedFence: number;
    }
  | { kind: 'refused'; snapshot: Snapshot }
  | { kind: 'stale'; fence: number };

export interface ClaimArgs {
  leaseValue: string;
  leaseMs: number;
  owner: string;
  maxAttempts: number;
  /** The token a quorum proposes; undefined on one master (the script issues it). */
  token: number | undefined;
  /** Publish the new running state with SPUBLISH (a Cluster). */
  sharded: boolean;
}

export async function claim(runner: ScriptRunner, names: KeyNames, args: ClaimArgs): Promise<ClaimReply> {
  const reply = await runner.evalScript(
    scripts.claim,
    [names.state, names.lease, names.fence],
    [
      args.leaseValue,
      String(args.leaseMs),
      args.owner,
      String(args.maxAttempts),
      args.token === undefined ? '' : String(args.token),
      names.done,
      args.sharded ? '1' : '0',
    ],
  );
  const { code, rest } = decode(scripts.claim, names, reply);
  switch (code) {
    case 'claimed':
      return {
        kind: 'claimed',
        token: Number(rest[0]),
        attempt: Number(rest[1]),
        startedAt: Number(rest[2]),
        replaced: decodeState(rest[3]),
        replacedFence: Number(rest[4]),
      };
    case 'ok':
      return { kind: 'refused', snapshot: snapshotOf(rest) };
    case 'stale':
      return { kind: 'stale', fence: Number(rest[0]) };
    default:
      throw unexpected(scripts.claim, reply);
  }
}

export async function read(runner: ScriptRunner, names: KeyNames): Promise<Snapshot> {
  const reply = await runner.evalScript(scripts.read, [names.state, names.lease, names.fence], []);
  const { code, rest } = decode(scripts.read, names, reply);
  if (code !== 'ok') throw unexpected(scripts.read, reply);
  return snapshotOf(rest);
}

/** True when renewed; false when the lease is no longer ours. */
export async function renew(
  runner: ScriptRunner,
  names: KeyNames,
  args: { leaseValue: string; leaseMs: number },
): Promise<boolean> {
  const reply = await runner.evalScript(
    scripts.renew,
    [names.lease],
    [args.leaseValue, String(args.leaseMs)],
  );
  const { code } = decode(scripts.renew, names, reply);
  if (code === 'ok') return true;
  if (code === 'not-holder') return false;
  throw unexpected(scripts.renew, reply);
}

/** The outcome of a script that ends (or gives back) our attempt. */
export type FinishReply = { ok: true } | { ok: false; reason: 'not-holder' | 'not-running' };

function finishReply(script: LuaScript, names: KeyNames, reply: unknown): FinishReply {
  const { code } = decode(script, names, reply);
  if (code === 'ok') return { ok: true };
  if (code === 'not-holder' || code === 'not-running') return { ok: false, reason: code };
  throw unexpected(script, reply);
}

export interface CompleteArgs {
  leaseValue: string;
  token: number;
  /** The JSON text of the value; undefined when fn returned undefined. */
  valueJson: string | undefined;
  doneTtlMs: number | undefined;
  /** The leader call's traceparent, kept with the value (diagnostics.ts); undefined when untraced. */
  trace?: string | undefined;
  sharded: boolean;
}

export async function complete(
  runner: ScriptRunner,
  names: KeyNames,
  args: CompleteArgs,
): Promise<FinishReply> {
  const reply = await runner.evalScript(
    scripts.complete,
    [names.state, names.lease],
    [
      args.leaseValue,
      String(args.token),
      args.valueJson ?? '',
      args.valueJson === undefined ? '0' : '1',
      String(args.doneTtlMs ?? 0),
      names.done,
      args.sharded ? '1' : '0',
      args.trace ?? '',
    ],
  );
  return finishReply(scripts.complete, names, reply);
}

export interface FailArgs {
  leaseValue: string;
  token: number;
  error: { name: string; message: string };
  outcome: 'failed' | 'lease-lost';
  sharded: boolean;
}

export async function fail(runner: ScriptRunner, names: KeyNames, args: FailArgs): Promise<FinishReply> {
  const reply = await runner.evalScript(
    scripts.fail,
    [names.state, names.lease],
    [
      args.leaseValue,
      String(args.token),
      JSON.stringify(args.error),
      args.outcome,
      names.done,
      args.sharded ? '1' : '0',
    ],
  );
  return finishReply(scripts.fail, names, reply);
}

export interface AbandonArgs {
  leaseValue: string;
  /** undefined when the claim's reply never came: the lease value alone says the attempt is ours. */
  token: number | undefined;
  sharded: boolean;
}

export async function abandon(
  runner: ScriptRunner,
  names: KeyNames,
  args: AbandonArgs,
): Promise<FinishReply> {
  const reply = await runner.evalScript(
    scripts.abandon,
    [names.state, names.lease],
    [
      args.leaseValue,
      args.token === undefined ? '' : String(args.token),
      names.done,
      args.sharded ? '1' : '0',
    ],
  );
  return finishReply(scripts.abandon, names, reply);
}

export type ResetReply =
  /** `fence`: the counter as the reset found it, the highest token whose attempt the reset ended. */
  { ok: true; existed: boolean; fence: number } | { ok: false; owner: string | undefined };

export async function reset(
  runner: ScriptRunner,
  names: KeyNames,
  args: { force: boolean; sharded: boolean; controlChannel: string },
): Promise<ResetReply> {
  const reply = await runner.evalScript(
    scripts.reset,
    [names.state, names.lease, names.fence],
    [args.force ? '1' : '0', names.done, args.sharded ? '1' : '0', args.controlChannel, names.key],
  );
  const { code, rest } = decode(scripts.reset, names, reply);
  if (code === 'ok') return { ok: true, existed: Number(rest[0]) === 1, fence: Number(rest[1]) };
  if (code === 'busy') return { ok: false, owner: rest[0] ? String(rest[0]) : undefined };
  throw unexpected(scripts.reset, reply);
}

/** Copies a done state to a master behind it (a quorum's read-repair); true when copied. */
export async function repair(
  runner: ScriptRunner,
  names: KeyNames,
  done: { state: StoredState; statePttl: number },
): Promise<boolean> {
  const { state, statePttl } = done;
  const reply = await runner.evalScript(
    scripts.repair,
    [names.state, names.fence],
    [
      String(state.token),
      String(statePttl > 0 ? statePttl : -1),
      state.owner ?? '',
      String(state.attempts),
      String(state.startedAt ?? ''),
      String(state.finishedAt ?? ''),
      state.valueJson === undefined ? '0' : '1',
      state.valueJson ?? '',
      state.doneTtlMs === undefined ? '' : String(state.doneTtlMs),
      state.trace ?? '',
    ],
  );
  const { code } = decode(scripts.repair, names, reply);
  if (code === 'ok') return true;
  if (code === 'not-running') return false;
  throw unexpected(scripts.repair, reply);
}
