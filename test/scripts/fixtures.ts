/**
 * Helpers for the script tests: states written to Redis as the scripts write them, a byte-exact look at
 * a key's three Redis keys, and confirmed subscribers that can prove a channel stayed silent.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { expect } from 'vitest';
import type { KeyNames } from '../../src/keys.js';
import { type Gate, gate } from '../helpers/gate.js';

/** A state hash as claim, complete and fail write it (the fields of `state.ts`, as strings). */
export interface RawState {
  status: 'running' | 'done' | 'failed';
  token: number;
  owner?: string;
  attempts: number;
  startedAt?: number;
  finishedAt?: number;
  value?: string;
  error?: string;
  outcome?: string;
  doneTtlMs?: number;
}

/** The hash of `state`, field by field, as HGETALL answers it. */
export function fieldsOf(state: RawState): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const [name, value] of Object.entries(state)) {
    if (value !== undefined) fields[name] = String(value);
  }
  return fields;
}

/** The same hash as a flat `[field, value, …]` list, the shape decodeState reads. */
export function flatOf(fields: Record<string, string>): string[] {
  return Object.entries(fields).flat();
}

/** HSETs `state` at the state key (replacing what was there), with a TTL when `ttlMs` is given. */
export async function writeState(
  redis: Redis,
  names: KeyNames,
  state: RawState,
  ttlMs?: number,
): Promise<void> {
  await redis.del(names.state);
  await redis.hset(names.state, fieldsOf(state));
  if (ttlMs !== undefined) await redis.pexpire(names.state, ttlMs);
}

/** One Redis key as it is: its type, its DUMP (value bytes, no TTL) and its PTTL. */
export interface RawKey {
  key: string;
  type: string;
  dump: string | null;
  pttl: number;
}

export async function rawKeys(redis: Redis, names: KeyNames): Promise<RawKey[]> {
  return Promise.all(
    [names.state, names.lease, names.fence].map(async (key) => {
      const dump = await redis.dumpBuffer(key);
      return {
        key,
        type: await redis.type(key),
        dump: dump ? dump.toString('hex') : null,
        pttl: await redis.pttl(key),
      };
    }),
  );
}

/**
 * Asserts nothing changed between two looks: same types and bytes, same expiry kind, and a TTL that
 * only ran down (by less than a second), never extended nor removed.
 */
export function expectSameKeys(before: RawKey[], after: RawKey[]): void {
  const shape = ({ pttl, ...rest }: RawKey) => ({ ...rest, expires: pttl > 0 ? 'yes' : pttl });
  expect(after.map(shape)).toEqual(before.map(shape));
  before.forEach((was, i) => {
    if (was.pttl <= 0) return;
    const now = after[i]!.pttl;
    expect(now, `${was.key} PTTL`).toBeLessThanOrEqual(was.pttl);
    expect(now, `${was.key} PTTL`).toBeGreaterThan(was.pttl - 1000);
  });
}

/** Runs `action` and asserts it left the key's three Redis keys exactly as they were. */
export async function unchangedBy<T>(redis: Redis, names: KeyNames, action: () => Promise<T>): Promise<T> {
  const before = await rawKeys(redis, names);
  const result = await action();
  expectSameKeys(before, await rawKeys(redis, names));
  return result;
}

/** What `action` rejected with (it must reject). */
export async function rejection(action: () => Promise<unknown>): Promise<unknown> {
  return action().then(
    (value) => {
      throw new Error(`expected a rejection, got ${JSON.stringify(value)}`);
    },
    (error: unknown) => error,
  );
}

export interface Listener {
  /** The next message on the channel, in the order the server sent them. */
  next(): Promise<string>;
  /**
   * Proves nothing else was published so far: publishes a marker from `publisher` and expects it to be
   * the very next message (the server delivers one channel's messages to a subscriber in order).
   */
  expectSilent(): Promise<void>;
  close(): Promise<void>;
}

/** A confirmed subscription (SUBSCRIBE, or SSUBSCRIBE when `sharded`) on its own connection. */
export async function listen(
  subscriber: Redis,
  publisher: Redis,
  channel: string,
  sharded = false,
  /** Messages to leave out (the running state a claim publishes, for tests about what follows it). */
  skip: (message: string) => boolean = () => false,
): Promise<Listener> {
  const messages: string[] = [];
  let waiting: Gate<void> | undefined;
  subscriber.on(sharded ? 'smessage' : 'message', (from: string, message: string) => {
    if (from !== channel || skip(message)) return;
    messages.push(message);
    waiting?.open();
  });
  // Resolves once the server confirmed the subscription.
  await (sharded ? subscriber.ssubscribe(channel) : subscriber.subscribe(channel));
  const next = async () => {
    while (messages.length === 0) {
      waiting = gate();
      await waiting.promise;
    }
    return messages.shift()!;
  };
  return {
    next,
    async expectSilent() {
      const marker = `marker-${randomUUID()}`;
      await (sharded ? publisher.spublish(channel, marker) : publisher.publish(channel, marker));
      expect(await next()).toBe(marker);
    },
    async close() {
      await subscriber.quit();
    },
  };
}
