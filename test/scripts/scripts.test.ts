/**
 * Each Lua script, through its typed wrapper, against a real redis-server. The lease is held by SETting
 * the lease key with a value and PX, as redlock would, so every ownership check can be aimed at directly.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { OnceForeignValueError } from '../../src/errors.js';
import { controlChannel, type KeyNames, keyNames } from '../../src/keys.js';
import { RedisNode } from '../../src/redis-node.js';
import { begin, complete, fail, readState, reset } from '../../src/scripts.js';
import { decodeMessage, IDLE } from '../../src/state.js';
import { decodeValue } from '../../src/value.js';
import { type Gate, gate } from '../helpers/gate.js';
import { type RedisServer, startRedis } from '../helpers/redis-server.js';

const LEASE = 'lease-value-A';
const OTHER = 'lease-value-B';
const OWNER = 'node-1';

let server: RedisServer;
let node: RedisNode;
let redis: Redis;

beforeAll(async () => {
  server = await startRedis({ name: 'scripts' });
  node = new RedisNode(server.url, 2000);
  redis = server.client();
});

afterAll(async () => {
  await node?.close();
  await server?.stop();
});

const listeners: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(listeners.splice(0).map((listener) => listener.close()));
});

/** Fresh names in a namespace of this test's own. */
function fresh(key = 'migrate:v42'): KeyNames {
  return keyNames(`scripts-${randomUUID()}`, key);
}

async function holdLease(names: KeyNames, value = LEASE, ms = 30_000): Promise<void> {
  expect(await redis.set(names.lease, value, 'PX', ms)).toBe('OK');
}

/** Holds the lease and begins attempt `attempt` with `token`, from the state with token `from`. */
async function startAttempt(
  names: KeyNames,
  { token = 1, attempt = 1, from = 0 }: { token?: number; attempt?: number; from?: number } = {},
): Promise<void> {
  await holdLease(names);
  const reply = await begin(node, names, {
    leaseValue: LEASE,
    expectedToken: from,
    newToken: token,
    attempt,
    owner: OWNER,
  });
  expect(reply.ok).toBe(true);
}

function beginArgs(overrides: Partial<Parameters<typeof begin>[2]> = {}): Parameters<typeof begin>[2] {
  return { leaseValue: LEASE, expectedToken: 0, newToken: 1, attempt: 1, owner: OWNER, ...overrides };
}

function completeArgs(
  overrides: Partial<Parameters<typeof complete>[2]> = {},
): Parameters<typeof complete>[2] {
  return {
    leaseValue: LEASE,
    token: 1,
    valueJson: '{"applied":12}',
    doneTtlMs: undefined,
    publish: 'PUBLISH',
    ...overrides,
  };
}

function failArgs(overrides: Partial<Parameters<typeof fail>[2]> = {}): Parameters<typeof fail>[2] {
  return {
    leaseValue: LEASE,
    token: 1,
    error: { name: 'TypeError', message: 'boom' },
    outcome: 'failed',
    publish: 'PUBLISH',
    ...overrides,
  };
}

/** Subscribes (confirmed) a second client to `channel`; `next()` resolves with each message in turn. */
async function listen(channel: string): Promise<{ next(): Promise<string> }> {
  const subscriber = server.client();
  const messages: string[] = [];
  let waiting: Gate<void> | undefined;
  subscriber.on('message', (from: string, message: string) => {
    if (from !== channel) return;
    messages.push(message);
    waiting?.open();
  });
  await subscriber.subscribe(channel);
  listeners.push({
    async close() {
      subscriber.disconnect();
    },
  });
  return {
    async next() {
      while (messages.length === 0) {
        waiting = gate();
        await waiting.promise;
      }
      return messages.shift()!;
    },
  };
}

async function exists(key: string): Promise<boolean> {
  return (await redis.exists(key)) === 1;
}

describe('read', () => {
  it('reads an idle key: no state, no lease, fence 0, and the server clock', async () => {
    const names = fresh();
    const before = Date.now();
    const reply = await readState(node, names);
    const after = Date.now();
    expect(reply.state).toEqual(IDLE);
    expect(reply.leasePttl).toBe(-2);
    expect(reply.fence).toBe(0);
    expect(reply.statePttl).toBe(-1); // -1: not a done state
    // Same machine: the server clock is our clock, to within a second either way.
    expect(reply.serverMicros).toBeGreaterThan((before - 1000) * 1000);
    expect(reply.serverMicros).toBeLessThan((after + 1000) * 1000);
    expect(Number.isSafeInteger(reply.serverMicros)).toBe(true);
  });

  it('reads how long a held lease has left, and stops there (no fence, no clock: nobody may take over)', async () => {
    const names = fresh();
    await redis.set(names.fence, '9');
    await holdLease(names, OTHER, 20_000);
    const reply = await readState(node, names);
    expect(reply.leasePttl).toBeGreaterThan(0);
    expect(reply.leasePttl).toBeLessThanOrEqual(20_000);
    expect(reply.fence).toBe(0);
    expect(reply.serverMicros).toBe(0);
  });

  it('reads a running attempt while its leader holds the lease', async () => {
    const names = fresh();
    await startAttempt(names, { token: 41 });
    const reply = await readState(node, names);
    expect(reply.state).toMatchObject({ status: 'running', token: 41, owner: OWNER, attempts: 1 });
    expect(reply.leasePttl).toBeGreaterThan(0);
    expect(reply.statePttl).toBe(-1);
  });

  it('reads the last token issued and the clock once the lease is free', async () => {
    const names = fresh();
    await startAttempt(names, { token: 41 });
    await redis.del(names.lease); // the leader crashed and its lease expired
    const reply = await readState(node, names);
    expect(reply.state).toMatchObject({ status: 'running', token: 41 });
    expect(reply.leasePttl).toBe(-2);
    expect(reply.fence).toBe(41);
    expect(reply.serverMicros).toBeGreaterThan(0);
  });

  it('reads a done key and how long it has left, and stops there', async () => {
    const names = fresh();
    await startAttempt(names, { token: 2 });
    expect((await complete(node, names, completeArgs({ token: 2, doneTtlMs: 60_000 }))).ok).toBe(true);
    const reply = await readState(node, names);
    expect(reply.state).toMatchObject({ status: 'done', token: 2, valueJson: '{"applied":12}' });
    expect(reply.statePttl).toBeGreaterThan(0);
    expect(reply.statePttl).toBeLessThanOrEqual(60_000);
    expect(reply.leasePttl).toBe(-2);
  });
});

describe('begin', () => {
  it('refuses when nobody holds the lease (not-holder), and changes nothing', async () => {
    const names = fresh();
    expect(await begin(node, names, beginArgs())).toEqual({ ok: false, reason: 'not-holder' });
    expect(await exists(names.state)).toBe(false);
    expect(await exists(names.fence)).toBe(false);
  });

  it('refuses when the lease holds another value (not-holder), and changes nothing', async () => {
    const names = fresh();
    await holdLease(names, OTHER);
    expect(await begin(node, names, beginArgs())).toEqual({ ok: false, reason: 'not-holder' });
    expect(await exists(names.state)).toBe(false);
    expect(await exists(names.fence)).toBe(false);
    expect(await redis.get(names.lease)).toBe(OTHER);
  });

  it('issues the token: marks the key running, records owner, attempt and start, and moves the fence', async () => {
    const names = fresh();
    await holdLease(names);
    const before = Date.now();
    const reply = await begin(node, names, beginArgs({ newToken: 5 }));
    const after = Date.now();
    expect(reply.ok).toBe(true);
    const startedAt = (reply as { startedAt: number }).startedAt;
    expect(startedAt).toBeGreaterThanOrEqual(before - 1000);
    expect(startedAt).toBeLessThanOrEqual(after + 1000);

    const { state, leasePttl } = await readState(node, names);
    expect(state).toMatchObject({ status: 'running', token: 5, owner: OWNER, attempts: 1, startedAt });
    expect(await redis.get(names.fence)).toBe('5');
    expect(leasePttl).toBeGreaterThan(0); // begin leaves the lease to its holder
  });

  it('records the next attempt number when it takes over from a failed attempt', async () => {
    const names = fresh();
    await startAttempt(names, { token: 1, attempt: 1 });
    expect(await fail(node, names, failArgs())).toEqual({ ok: true });
    await startAttempt(names, { token: 2, attempt: 2, from: 1 });
    const { state } = await readState(node, names);
    expect(state).toMatchObject({ status: 'running', token: 2, attempts: 2, error: undefined });
    expect(state.outcome).toBeUndefined(); // a new attempt starts from a clean state
    expect(await redis.get(names.fence)).toBe('2');
  });

  it('refuses when the key is done', async () => {
    const names = fresh();
    await startAttempt(names);
    expect(await complete(node, names, completeArgs())).toEqual({ ok: true });
    await holdLease(names);
    expect(await begin(node, names, beginArgs({ expectedToken: 1, newToken: 2 }))).toEqual({
      ok: false,
      reason: 'done',
    });
    expect((await readState(node, names)).state).toMatchObject({ status: 'done', token: 1 });
    expect(await redis.get(names.fence)).toBe('1');
  });

  it('refuses when a later attempt began since the caller read the state (changed)', async () => {
    const names = fresh();
    await startAttempt(names, { token: 1 });
    // The caller read an idle key, but attempt 1 began meanwhile.
    expect(await begin(node, names, beginArgs({ expectedToken: 0, newToken: 2 }))).toEqual({
      ok: false,
      reason: 'changed',
    });
    expect((await readState(node, names)).state).toMatchObject({ status: 'running', token: 1 });
    expect(await redis.get(names.fence)).toBe('1');
  });

  it('brings a lagging master forward: a stored token below the expected one is overwritten', async () => {
    // On a quorum, a master that restarted empty or missed a write is behind the one the caller read.
    const names = fresh();
    await startAttempt(names, { token: 1 });
    expect(await begin(node, names, beginArgs({ expectedToken: 3, newToken: 4 }))).toMatchObject({
      ok: true,
    });
    expect((await readState(node, names)).state).toMatchObject({ status: 'running', token: 4 });

    const empty = fresh();
    await holdLease(empty);
    expect(await begin(node, empty, beginArgs({ expectedToken: 3, newToken: 4 }))).toMatchObject({
      ok: true,
    });
    expect(await redis.get(empty.fence)).toBe('4');
  });

  it('refuses a new token at or below the fence (stale), saying where the fence is', async () => {
    const names = fresh();
    await redis.set(names.fence, '7');
    await holdLease(names);
    expect(await begin(node, names, beginArgs({ newToken: 7 }))).toEqual({
      ok: false,
      reason: 'stale',
      fence: 7,
    });
    expect(await begin(node, names, beginArgs({ newToken: 3 }))).toEqual({
      ok: false,
      reason: 'stale',
      fence: 7,
    });
    expect(await exists(names.state)).toBe(false);
    expect(await redis.get(names.fence)).toBe('7');
    expect((await begin(node, names, beginArgs({ newToken: 8 }))).ok).toBe(true);
  });

  it('compares tokens as numbers, up to the largest safe integer', async () => {
    const names = fresh();
    await redis.set(names.fence, '999');
    await holdLease(names);
    // As strings, '1000' < '999'; as numbers it is higher.
    expect((await begin(node, names, beginArgs({ newToken: 1000 }))).ok).toBe(true);
    const big = Number.MAX_SAFE_INTEGER;
    expect((await begin(node, names, beginArgs({ expectedToken: 1000, newToken: big, attempt: 2 }))).ok).toBe(
      true,
    );
    expect((await readState(node, names)).state.token).toBe(big);
    expect(await redis.get(names.fence)).toBe(String(big));
  });
});

describe('complete', () => {
  it('refuses a stale token (changed), leaving the attempt running and the lease held', async () => {
    const names = fresh();
    await startAttempt(names, { token: 1 });
    expect(await complete(node, names, completeArgs({ token: 2 }))).toEqual({ ok: false, reason: 'changed' });
    expect((await readState(node, names)).state).toMatchObject({ status: 'running', token: 1 });
    expect(await redis.get(names.lease)).toBe(LEASE);
  });

  it('refuses when another value holds the lease (not-holder)', async () => {
    const names = fresh();
    await startAttempt(names);
    await holdLease(names, OTHER); // our lease expired and someone else took it
    expect(await complete(node, names, completeArgs())).toEqual({ ok: false, reason: 'not-holder' });
    expect((await readState(node, names)).state.status).toBe('running');
    expect(await redis.get(names.lease)).toBe(OTHER);
  });

  it('refuses when the lease has expired (not-holder)', async () => {
    const names = fresh();
    await startAttempt(names);
    await redis.del(names.lease);
    expect(await complete(node, names, completeArgs())).toEqual({ ok: false, reason: 'not-holder' });
    expect((await readState(node, names)).state.status).toBe('running');
  });

  it('records the value for the holder, deletes the lease, and keeps the state until reset', async () => {
    const names = fresh();
    await startAttempt(names, { token: 1 });
    expect(await complete(node, names, completeArgs())).toEqual({ ok: true });
    const { state, leasePttl, statePttl } = await readState(node, names);
    expect(state).toMatchObject({
      status: 'done',
      token: 1,
      owner: OWNER,
      attempts: 1,
      doneTtlMs: undefined,
    });
    expect(decodeValue(state.valueJson)).toEqual({ applied: 12 });
    expect(state.finishedAt).toBeGreaterThanOrEqual(state.startedAt!);
    expect(leasePttl).toBe(-2);
    expect(await exists(names.lease)).toBe(false);
    expect(statePttl).toBe(-1);
    expect(await redis.pttl(names.state)).toBe(-1);
  });

  it('records no value when fn returned undefined', async () => {
    const names = fresh();
    await startAttempt(names);
    expect(await complete(node, names, completeArgs({ valueJson: undefined }))).toEqual({ ok: true });
    const { state } = await readState(node, names);
    expect(state.status).toBe('done');
    expect(state.valueJson).toBeUndefined();
    expect(await redis.hexists(names.state, 'value')).toBe(0);
  });

  it('expires the done state after doneTtlMs, and records the TTL in the state', async () => {
    const names = fresh();
    await startAttempt(names);
    expect(await complete(node, names, completeArgs({ doneTtlMs: 60_000 }))).toEqual({ ok: true });
    const pttl = await redis.pttl(names.state);
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(60_000);
    const { state, statePttl } = await readState(node, names);
    expect(state.doneTtlMs).toBe(60_000);
    expect(statePttl).toBeGreaterThan(0);
    expect(statePttl).toBeLessThanOrEqual(60_000);
  });

  it('publishes the done state, value included, on the done channel', async () => {
    const names = fresh();
    await startAttempt(names, { token: 3 });
    const channel = await listen(names.done);
    expect(await complete(node, names, completeArgs({ token: 3 }))).toEqual({ ok: true });
    const published = decodeMessage(await channel.next());
    expect(published).toMatchObject({ status: 'done', token: 3, owner: OWNER, attempts: 1 });
    expect(decodeValue(published!.valueJson)).toEqual({ applied: 12 });
    expect(published).toEqual((await readState(node, names)).state);
  });

  it('publishes nothing when it refuses', async () => {
    const names = fresh();
    await startAttempt(names, { token: 1 });
    const channel = await listen(names.done);
    expect((await complete(node, names, completeArgs({ token: 2 }))).ok).toBe(false);
    // A later message is the first one the channel carries.
    expect(await complete(node, names, completeArgs({ token: 1, valueJson: '"second"' }))).toEqual({
      ok: true,
    });
    expect(decodeMessage(await channel.next())?.valueJson).toBe('"second"');
  });
});

describe('fail', () => {
  it('records the error and outcome, releases the lease, and publishes the failed state', async () => {
    const names = fresh();
    await startAttempt(names, { token: 1 });
    const channel = await listen(names.done);
    expect(await fail(node, names, failArgs())).toEqual({ ok: true });
    const { state, leasePttl } = await readState(node, names);
    expect(state).toMatchObject({
      status: 'failed',
      token: 1,
      owner: OWNER,
      attempts: 1,
      error: { name: 'TypeError', message: 'boom' },
      outcome: 'failed',
    });
    expect(state.finishedAt).toBeGreaterThanOrEqual(state.startedAt!);
    expect(leasePttl).toBe(-2);
    expect(await exists(names.lease)).toBe(false);
    expect(decodeMessage(await channel.next())).toEqual(state);
  });

  it('records a lost lease after the lease has already expired', async () => {
    const names = fresh();
    await startAttempt(names);
    await redis.del(names.lease);
    const error = { name: 'LeaseLostError', message: 'renewal was not proven in time' };
    expect(await fail(node, names, failArgs({ error, outcome: 'lease-lost' }))).toEqual({ ok: true });
    expect((await readState(node, names)).state).toMatchObject({
      status: 'failed',
      outcome: 'lease-lost',
      error,
    });
  });

  it('refuses when someone else holds the lease (not-holder), and leaves their lease alone', async () => {
    const names = fresh();
    await startAttempt(names);
    await holdLease(names, OTHER);
    expect(await fail(node, names, failArgs())).toEqual({ ok: false, reason: 'not-holder' });
    expect((await readState(node, names)).state.status).toBe('running');
    expect(await redis.get(names.lease)).toBe(OTHER);
  });

  it('refuses a stale token (changed), leaving the lease held', async () => {
    const names = fresh();
    await startAttempt(names, { token: 2 });
    expect(await fail(node, names, failArgs({ token: 1 }))).toEqual({ ok: false, reason: 'changed' });
    expect((await readState(node, names)).state).toMatchObject({ status: 'running', token: 2 });
    expect(await redis.get(names.lease)).toBe(LEASE);
  });

  it('refuses to turn a done key into a failed one (changed)', async () => {
    const names = fresh();
    await startAttempt(names);
    expect((await complete(node, names, completeArgs())).ok).toBe(true);
    expect(await fail(node, names, failArgs())).toEqual({ ok: false, reason: 'changed' });
    expect((await readState(node, names)).state.status).toBe('done');
  });
});

describe('reset', () => {
  const resetArgs = (names: KeyNames, force: boolean) => ({
    force,
    publish: 'PUBLISH' as const,
    controlChannel: controlChannel(names.state.split(':')[0]!),
  });

  it('refuses while a leader holds the lease, naming the owner, and changes nothing', async () => {
    const names = fresh();
    await startAttempt(names);
    expect(await reset(node, names, resetArgs(names, false))).toEqual({
      ok: false,
      reason: 'busy',
      owner: OWNER,
    });
    expect((await readState(node, names)).state.status).toBe('running');
    expect(await redis.get(names.lease)).toBe(LEASE);
  });

  it('refuses while a lease is held before any attempt began, with no owner known', async () => {
    const names = fresh();
    await holdLease(names);
    expect(await reset(node, names, resetArgs(names, false))).toEqual({
      ok: false,
      reason: 'busy',
      owner: undefined,
    });
    expect(await redis.get(names.lease)).toBe(LEASE);
  });

  it('with force, deletes the state and the lease but keeps the fence, so tokens keep rising', async () => {
    const names = fresh();
    await startAttempt(names, { token: 4 });
    expect(await reset(node, names, resetArgs(names, true))).toEqual({ ok: true, existed: true });
    expect(await exists(names.state)).toBe(false);
    expect(await exists(names.lease)).toBe(false);
    expect(await redis.get(names.fence)).toBe('4');
    const { state, fence } = await readState(node, names);
    expect(state).toEqual(IDLE);
    expect(fence).toBe(4);
    await holdLease(names);
    expect(await begin(node, names, beginArgs({ newToken: 4 }))).toEqual({
      ok: false,
      reason: 'stale',
      fence: 4,
    });
  });

  it('resets a done key without force, and says whether there was a state', async () => {
    const names = fresh();
    await startAttempt(names);
    expect((await complete(node, names, completeArgs())).ok).toBe(true);
    expect(await reset(node, names, resetArgs(names, false))).toEqual({ ok: true, existed: true });
    expect(await reset(node, names, resetArgs(names, false))).toEqual({ ok: true, existed: false });
  });

  it("publishes the key on the namespace's control channel and the empty state on the done channel", async () => {
    const names = fresh('cache:warm');
    const args = resetArgs(names, false);
    const control = await listen(args.controlChannel);
    const done = await listen(names.done);
    expect(await reset(node, names, args)).toEqual({ ok: true, existed: false });
    expect(await control.next()).toBe('cache:warm');
    const published = await done.next();
    expect(published).toBe('[]');
    expect(decodeMessage(published)).toEqual(IDLE);
  });
});

describe('a foreign value at one of our keys', () => {
  interface Foreign {
    what: string;
    at: (names: KeyNames) => string;
    plant: (names: KeyNames) => Promise<unknown>;
    /** What Redis holds there afterwards; must be what was planted. */
    inspect: (names: KeyNames) => Promise<unknown>;
    planted: unknown;
    detail: RegExp;
  }
  const cases: Foreign[] = [
    {
      what: 'a string at the state key',
      at: (n) => n.state,
      plant: (n) => redis.set(n.state, 'hello'),
      inspect: async (n) => [await redis.type(n.state), await redis.get(n.state)],
      planted: ['string', 'hello'],
      detail: /holds a string/,
    },
    {
      what: 'a hash without a status at the state key',
      at: (n) => n.state,
      plant: (n) => redis.hset(n.state, 'user', 'alice'),
      inspect: async (n) => redis.hgetall(n.state),
      planted: { user: 'alice' },
      detail: /a hash without a redis-once status/,
    },
    {
      what: 'a list at the lease key',
      at: (n) => n.lease,
      plant: (n) => redis.rpush(n.lease, 'x', 'y'),
      inspect: async (n) => [await redis.type(n.lease), await redis.lrange(n.lease, 0, -1)],
      planted: ['list', ['x', 'y']],
      detail: /holds a list/,
    },
    {
      what: 'a string without an expiry at the lease key',
      at: (n) => n.lease,
      plant: (n) => redis.set(n.lease, LEASE),
      inspect: async (n) => [await redis.get(n.lease), await redis.pttl(n.lease)],
      planted: [LEASE, -1],
      detail: /a string without an expiry/,
    },
    {
      what: 'a non-numeric fence',
      at: (n) => n.fence,
      plant: (n) => redis.set(n.fence, 'abc'),
      inspect: async (n) => [await redis.type(n.fence), await redis.get(n.fence)],
      planted: ['string', 'abc'],
      detail: /a string that is not a counter/,
    },
    {
      what: 'a negative fence',
      at: (n) => n.fence,
      plant: (n) => redis.set(n.fence, '-3'),
      inspect: async (n) => redis.get(n.fence),
      planted: '-3',
      detail: /not a counter/,
    },
    {
      what: 'a set at the fence key',
      at: (n) => n.fence,
      plant: (n) => redis.sadd(n.fence, '1'),
      inspect: async (n) => [await redis.type(n.fence), await redis.smembers(n.fence)],
      planted: ['set', ['1']],
      detail: /holds a set/,
    },
  ];

  async function expectForeign(action: Promise<unknown>, names: KeyNames, c: Foreign): Promise<void> {
    const error = await action.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(OnceForeignValueError);
    const foreign = error as OnceForeignValueError;
    expect(foreign.redisKey).toBe(c.at(names));
    expect(foreign.key).toBe(names.key);
    expect(foreign.code).toBe('ONCE_FOREIGN_VALUE');
    expect(foreign.message).toContain(`"${c.at(names)}"`);
    expect(foreign.message).toMatch(c.detail);
  }

  for (const c of cases) {
    it(`read, begin and reset reject ${c.what}, naming that key, and leave it as it was`, async () => {
      const names = fresh();
      await c.plant(names);

      await expectForeign(readState(node, names), names, c);
      await expectForeign(begin(node, names, beginArgs()), names, c);
      await expectForeign(
        reset(node, names, { force: false, publish: 'PUBLISH', controlChannel: 'x' }),
        names,
        c,
      );
      await expectForeign(
        reset(node, names, { force: true, publish: 'PUBLISH', controlChannel: 'x' }),
        names,
        c,
      );

      expect(await c.inspect(names)).toEqual(c.planted);
      // Nothing else was written either: no state, no lease, no token issued.
      for (const other of [names.state, names.lease, names.fence].filter((k) => k !== c.at(names))) {
        expect(await exists(other)).toBe(false);
      }
    });
  }

  it('begin refuses a foreign fence even from the lease holder, rather than overwrite it with a token', async () => {
    const names = fresh();
    await redis.set(names.fence, 'not-a-counter');
    await holdLease(names);
    const error = await begin(node, names, beginArgs()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OnceForeignValueError);
    expect((error as OnceForeignValueError).redisKey).toBe(names.fence);
    expect(await redis.get(names.fence)).toBe('not-a-counter');
    expect(await exists(names.state)).toBe(false);
  });

  it('reset with force refuses a foreign state, and so deletes neither it nor the lease', async () => {
    const names = fresh();
    await redis.set(names.state, 'hello');
    await holdLease(names);
    const error = await reset(node, names, { force: true, publish: 'PUBLISH', controlChannel: 'x' }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(OnceForeignValueError);
    expect((error as OnceForeignValueError).redisKey).toBe(names.state);
    expect(await redis.get(names.state)).toBe('hello');
    expect(await redis.get(names.lease)).toBe(LEASE);
  });

  it('complete and fail reject a foreign state with OnceForeignValueError, and leave it as it was', async () => {
    const names = fresh();
    await redis.set(names.state, 'hello');
    await holdLease(names);
    for (const call of [() => complete(node, names, completeArgs()), () => fail(node, names, failArgs())]) {
      const error = await call().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OnceForeignValueError);
      expect((error as OnceForeignValueError).redisKey).toBe(names.state);
    }
    expect(await redis.get(names.state)).toBe('hello');
    expect(await redis.get(names.lease)).toBe(LEASE);
  });
});
