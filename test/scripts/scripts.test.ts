/**
 * Each Lua script of src/lua/, called through its typed wrapper in src/scripts.ts against a real
 * redis-server, with Redis inspected directly where a test needs to see raw keys. Every test works in
 * a namespace of its own, so tests are independent of each other and of their order.
 */
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseNotice } from '../../src/control.js';
import { decide, previousAttempt } from '../../src/decide.js';
import type { Driver } from '../../src/drivers/driver.js';
import { openDriver } from '../../src/drivers/index.js';
import { OnceForeignValueError } from '../../src/errors.js';
import { controlChannel, type KeyNames, keyNames } from '../../src/keys.js';
import {
  abandon,
  type ClaimArgs,
  type ClaimReply,
  claim,
  complete,
  fail,
  read,
  renew,
  repair,
  reset,
} from '../../src/scripts.js';
import { decodeMessage, decodeState, IDLE, type StoredState } from '../../src/state.js';
import { waitFor } from '../helpers/gate.js';
import { type RedisServer, startRedis } from '../helpers/redis-server.js';
import {
  expectSameKeys,
  fieldsOf,
  flatOf,
  type Listener,
  listen as listenOn,
  type RawState,
  rawKeys,
  rejection,
  unchangedBy,
  writeState,
} from './fixtures.js';

const LEASE = 'lease-value-A';
const OTHER = 'lease-value-B';
const OWNER = 'node-1';
const LEASE_MS = 30_000;
/** A TTL short enough to wait out. */
const TINY_MS = 50;

let server: RedisServer;
let driver: Driver;
let redis: Redis;

beforeAll(async () => {
  server = await startRedis({ name: 'scripts' });
  driver = openDriver(server.url, 2000);
  redis = server.client();
});

afterAll(async () => {
  await driver?.close();
  await server?.stop();
});

const listeners: Listener[] = [];
afterEach(async () => {
  await Promise.all(listeners.splice(0).map((listener) => listener.close()));
});

/** A fresh namespace, and the names of one key in it. */
function freshNamespace(): { ns: string; names: KeyNames } {
  const ns = `scripts-${randomUUID()}`;
  return { ns, names: keyNames(ns, 'migrate:v42') };
}

function fresh(): KeyNames {
  return freshNamespace().names;
}

/** A confirmed subscriber on `channel`, closed after the test. */
/**
 * What `channel` receives, but for the running state a claim publishes (the claim's own tests use
 * `listenToClaims`): most tests are about what a script after the claim publishes.
 */
async function listen(channel: string, sharded = false): Promise<Listener> {
  const listener = await listenOn(server.client(), redis, channel, sharded, isRunningState);
  listeners.push(listener);
  return listener;
}

function isRunningState(message: string): boolean {
  return decodeMessage(message)?.state.status === 'running';
}

async function listenToClaims(channel: string, sharded = false): Promise<Listener> {
  const listener = await listenOn(server.client(), redis, channel, sharded);
  listeners.push(listener);
  return listener;
}

async function serverMicros(): Promise<number> {
  const [seconds, micros] = (await redis.call('TIME')) as [string, string];
  return Number(seconds) * 1_000_000 + Number(micros);
}

function claimArgs(overrides: Partial<ClaimArgs> = {}): ClaimArgs {
  return {
    leaseValue: LEASE,
    leaseMs: LEASE_MS,
    owner: OWNER,
    maxAttempts: 3,
    token: undefined,
    sharded: false,
    ...overrides,
  };
}

/** Claims the key, which must be free. */
async function claimed(
  names: KeyNames,
  overrides: Partial<ClaimArgs> = {},
): Promise<Extract<ClaimReply, { kind: 'claimed' }>> {
  const reply = await claim(driver, names, claimArgs(overrides));
  if (reply.kind !== 'claimed')
    throw new Error(`expected the claim to take the key, got ${JSON.stringify(reply)}`);
  return reply;
}

function completeArgs(token: number, overrides: Partial<Parameters<typeof complete>[2]> = {}) {
  return {
    leaseValue: LEASE,
    token,
    valueJson: '{"applied":12}',
    doneTtlMs: undefined,
    sharded: false,
    ...overrides,
  };
}

function failArgs(
  token: number,
  overrides: Partial<Parameters<typeof fail>[2]> = {},
): Parameters<typeof fail>[2] {
  return {
    leaseValue: LEASE,
    token,
    error: { name: 'TypeError', message: 'boom' },
    outcome: 'failed',
    sharded: false,
    ...overrides,
  };
}

/** Waits out a lease that was given TINY_MS. */
async function leaseExpired(names: KeyNames): Promise<void> {
  await waitFor(async () => (await redis.exists(names.lease)) === 0, { what: `${names.lease} to expire` });
}

/** A failed attempt, as fail writes it. */
function failedState(overrides: Partial<RawState> = {}): RawState {
  return {
    status: 'failed',
    token: 10,
    owner: 'node-0',
    attempts: 1,
    startedAt: 1_700_000_000_000,
    finishedAt: 1_700_000_000_500,
    error: JSON.stringify({ name: 'Error', message: 'first try' }),
    outcome: 'failed',
    ...overrides,
  };
}

/** A done state, as complete writes it. */
function doneState(overrides: Partial<RawState> = {}): RawState {
  return {
    status: 'done',
    token: 10,
    owner: 'node-0',
    attempts: 1,
    startedAt: 1_700_000_000_000,
    finishedAt: 1_700_000_000_500,
    value: '{"applied":1}',
    ...overrides,
  };
}

function expectForeign(error: unknown, names: KeyNames, redisKey: string, detail: string): void {
  expect(error).toBeInstanceOf(OnceForeignValueError);
  const foreign = error as OnceForeignValueError;
  expect(foreign.redisKey).toBe(redisKey);
  expect(foreign.key).toBe(names.key);
  expect(foreign.code).toBe('ONCE_FOREIGN_VALUE');
  expect(foreign.message).toContain(`"${redisKey}" holds ${detail}`);
}

describe('claim', () => {
  it('publishes the running state it took (without prev), so a process that only waits learns of the attempt', async () => {
    const names = fresh();
    await redis.hset(names.state, failedState({ attempts: 1 }));
    const claims = await listenToClaims(names.done);
    const sharded = await listenToClaims(names.done, true);
    const reply = await claimed(names);
    const message = decodeMessage(await claims.next());
    expect(message).toEqual({
      state: {
        ...IDLE,
        status: 'running',
        token: reply.token,
        owner: OWNER,
        attempts: 2,
        startedAt: reply.startedAt,
      },
      valueOmitted: false,
    });
    await sharded.expectSilent();
    // A refused claim publishes nothing.
    expect(await claim(driver, names, claimArgs({ leaseValue: 'someone-else' }))).toMatchObject({
      kind: 'refused',
    });
    await claims.expectSilent();
  });

  it('with sharded: true publishes the running state with SPUBLISH', async () => {
    const names = fresh();
    const plain = await listenToClaims(names.done);
    const sharded = await listenToClaims(names.done, true);
    await claimed(names, { sharded: true });
    expect(decodeMessage(await sharded.next())?.state.status).toBe('running');
    await plain.expectSilent();
  });

  it('answers a claim sent again (a client resending it after a dropped connection) as it answered the first', async () => {
    const names = fresh();
    await redis.hset(names.state, failedState({ attempts: 1 }));
    const first = await claimed(names);
    const stateAfter = await redis.hgetall(names.state);
    const again = await claim(driver, names, claimArgs());
    expect(again).toEqual({ ...first, replacedFence: 0 });
    // Nothing changed: no second attempt, the same lease.
    expect(await redis.hgetall(names.state)).toEqual(stateAfter);
    expect(await redis.get(names.lease)).toBe(LEASE);
    // Another caller's claim (another lease value) is still refused.
    expect(await claim(driver, names, claimArgs({ leaseValue: 'someone-else' }))).toMatchObject({
      kind: 'refused',
    });
  });

  it('takes a free key in one step: the lease with its TTL, the counter at the token, and the running state', async () => {
    const names = fresh();
    const clockBefore = await serverMicros();
    const reply = await claimed(names);
    const clockAfter = await serverMicros();

    expect(reply.attempt).toBe(1);
    expect(reply.replaced).toEqual(IDLE);
    expect(Number.isSafeInteger(reply.token)).toBe(true);
    // An empty counter: the token is the server clock in µs.
    expect(reply.token).toBeGreaterThanOrEqual(clockBefore);
    expect(reply.token).toBeLessThanOrEqual(clockAfter);
    expect(reply.startedAt).toBeGreaterThanOrEqual(Math.floor(clockBefore / 1000));
    expect(reply.startedAt).toBeLessThanOrEqual(Math.ceil(clockAfter / 1000));

    expect(await redis.get(names.lease)).toBe(LEASE);
    const pttl = await redis.pttl(names.lease);
    expect(pttl).toBeGreaterThan(LEASE_MS - 1000);
    expect(pttl).toBeLessThanOrEqual(LEASE_MS);
    expect(await redis.get(names.fence)).toBe(String(reply.token));
    expect(await redis.hgetall(names.state)).toEqual({
      status: 'running',
      token: String(reply.token),
      owner: OWNER,
      attempts: '1',
      startedAt: String(reply.startedAt),
      prev: '{}',
    });
    expect(await redis.pttl(names.state)).toBe(-1);
  });

  it('issues a token above the old counter when the counter is ahead of the server clock', async () => {
    const names = fresh();
    const ahead = (await serverMicros()) + 1_000_000_000;
    await redis.set(names.fence, String(ahead));
    const reply = await claimed(names);
    expect(reply.token).toBe(ahead + 1);
    expect(await redis.get(names.fence)).toBe(String(ahead + 1));
  });

  it('floors the token at the server clock in µs when the counter is behind it (a restart lost the counter)', async () => {
    const names = fresh();
    await redis.set(names.fence, '5');
    const clock = await serverMicros();
    const reply = await claimed(names);
    expect(reply.token).toBeGreaterThanOrEqual(clock);
    expect(reply.token).toBeGreaterThan(5);
  });

  it('issues strictly rising tokens, claim after claim', async () => {
    const names = fresh();
    const tokens: number[] = [];
    for (let i = 0; i < 5; i++) {
      tokens.push((await claimed(names, { maxAttempts: 10 })).token);
      await redis.del(names.lease); // the leader crashed: the next claim takes over
    }
    for (let i = 1; i < tokens.length; i++) expect(tokens[i]!).toBeGreaterThan(tokens[i - 1]!);
  });

  it('refuses a done key, with its snapshot (statePttl, no lease read, fence not read), and changes nothing', async () => {
    const names = fresh();
    const { token } = await claimed(names);
    expect(await complete(driver, names, completeArgs(token, { doneTtlMs: 60_000 }))).toEqual({ ok: true });
    const stored = await redis.hgetall(names.state);

    const reply = await unchangedBy(redis, names, () =>
      claim(driver, names, claimArgs({ leaseValue: OTHER })),
    );
    expect(reply.kind).toBe('refused');
    if (reply.kind !== 'refused') return;
    expect(reply.snapshot.state).toEqual(decodeState(flatOf(stored)));
    expect(reply.snapshot.state).toMatchObject({ status: 'done', token, valueJson: '{"applied":12}' });
    expect(reply.snapshot.statePttl).toBeGreaterThan(59_000);
    expect(reply.snapshot.statePttl).toBeLessThanOrEqual(60_000);
    expect(reply.snapshot.leasePttl).toBe(-2);
    expect(reply.snapshot.fence).toBe(0);
  });

  it('refuses a done key that does not expire, with statePttl -1', async () => {
    const names = fresh();
    await writeState(redis, names, doneState());
    const reply = await unchangedBy(redis, names, () => claim(driver, names, claimArgs()));
    expect(reply).toMatchObject({ kind: 'refused', snapshot: { statePttl: -1, leasePttl: -2 } });
  });

  it('refuses a key whose lease is held, with how long the lease has left, and changes nothing', async () => {
    const names = fresh();
    await redis.set(names.lease, OTHER, 'PX', 20_000);
    await redis.set(names.fence, '7');
    const reply = await unchangedBy(redis, names, () => claim(driver, names, claimArgs()));
    expect(reply.kind).toBe('refused');
    if (reply.kind !== 'refused') return;
    expect(reply.snapshot.state).toEqual(IDLE);
    expect(reply.snapshot.leasePttl).toBeGreaterThan(19_000);
    expect(reply.snapshot.leasePttl).toBeLessThanOrEqual(20_000);
    expect(reply.snapshot.statePttl).toBe(-1);
    expect(await redis.get(names.lease)).toBe(OTHER);
    expect(await redis.exists(names.state)).toBe(0);
  });

  it('refuses a running key while its leader holds the lease', async () => {
    const names = fresh();
    const first = await claimed(names);
    const reply = await unchangedBy(redis, names, () =>
      claim(driver, names, claimArgs({ leaseValue: OTHER })),
    );
    expect(reply).toMatchObject({
      kind: 'refused',
      snapshot: { state: { status: 'running', token: first.token, owner: OWNER, attempts: 1 } },
    });
    if (reply.kind === 'refused') expect(reply.snapshot.leasePttl).toBeGreaterThan(0);
  });

  it('refuses a failed key whose attempts reached maxAttempts, with its snapshot and the fence', async () => {
    const names = fresh();
    await writeState(redis, names, failedState({ attempts: 3, token: 42 }));
    await redis.set(names.fence, '42');
    const reply = await unchangedBy(redis, names, () => claim(driver, names, claimArgs({ maxAttempts: 3 })));
    expect(reply).toEqual({
      kind: 'refused',
      snapshot: {
        state: decodeState(flatOf(fieldsOf(failedState({ attempts: 3, token: 42 })))),
        leasePttl: -2,
        statePttl: -1,
        fence: 42,
      },
    });
  });

  it('refuses a crashed key (running, no lease) whose attempts reached maxAttempts', async () => {
    const names = fresh();
    const first = await claimed(names, { maxAttempts: 1 });
    await redis.del(names.lease); // crashed: the lease ran out
    const reply = await unchangedBy(redis, names, () => claim(driver, names, claimArgs({ maxAttempts: 1 })));
    expect(reply).toMatchObject({
      kind: 'refused',
      snapshot: { state: { status: 'running', attempts: 1 }, leasePttl: -2, fence: first.token },
    });
  });

  it('takes over a failed key as attempt attempts+1, telling what it replaced, and keeps it in `prev`', async () => {
    const names = fresh();
    const failed = fieldsOf(failedState({ attempts: 2, outcome: 'lease-lost' }));
    await writeState(redis, names, failedState({ attempts: 2, outcome: 'lease-lost' }));
    await redis.set(names.fence, '10');
    const reply = await claimed(names, { maxAttempts: 3 });
    expect(reply.attempt).toBe(3);
    expect(reply.token).toBeGreaterThan(10);
    expect(reply.replaced).toEqual(decodeState(flatOf(failed)));
    expect(reply.replaced).toMatchObject({
      status: 'failed',
      token: 10,
      attempts: 2,
      error: { name: 'Error', message: 'first try' },
      outcome: 'lease-lost',
    });
    const state = await redis.hgetall(names.state);
    expect(state).toMatchObject({
      status: 'running',
      token: String(reply.token),
      owner: OWNER,
      attempts: '3',
    });
    expect(Object.keys(state).sort()).toEqual(['attempts', 'owner', 'prev', 'startedAt', 'status', 'token']);
    expect(decodeState(JSON.parse(state.prev!))).toEqual(reply.replaced);
    expect(await redis.get(names.lease)).toBe(LEASE);
  });

  it('takes over a crashed key (running, no lease) with a higher token; `replaced` is the crashed attempt', async () => {
    const names = fresh();
    const first = await claimed(names, { owner: 'node-0' });
    await redis.del(names.lease);
    const reply = await claimed(names, { leaseValue: OTHER });
    expect(reply.attempt).toBe(2);
    expect(reply.token).toBeGreaterThan(first.token);
    expect(reply.replaced).toEqual({
      ...IDLE,
      status: 'running',
      token: first.token,
      owner: 'node-0',
      attempts: 1,
      startedAt: first.startedAt,
    });
    expect(previousAttempt(reply.replaced)).toEqual({
      owner: 'node-0',
      fencingToken: first.token,
      startedAt: first.startedAt,
      outcome: 'crashed',
    });
    expect(await redis.get(names.lease)).toBe(OTHER);
  });

  it('issues exactly the token a quorum proposes, when it is above the counter', async () => {
    const names = fresh();
    await redis.set(names.fence, '100');
    const reply = await claimed(names, { token: 101 });
    expect(reply.token).toBe(101);
    expect(await redis.get(names.fence)).toBe('101');
    expect(await redis.hget(names.state, 'token')).toBe('101');
  });

  it('issues a proposed token below the server clock as it is (the quorum floors it, not each master)', async () => {
    const names = fresh();
    const reply = await claimed(names, { token: 3 });
    expect(reply.token).toBe(3);
  });

  it.each([
    ['at', 100],
    ['above', 250],
  ])(
    'refuses a proposed token with stale when the counter is %s it, and changes nothing',
    async (_, counter) => {
      const names = fresh();
      await redis.set(names.fence, String(counter));
      const reply = await unchangedBy(redis, names, () => claim(driver, names, claimArgs({ token: 100 })));
      expect(reply).toEqual({ kind: 'stale', fence: counter });
    },
  );

  it('claims exactly when decide() says lead, as the attempt decide() names (any state a key can be in)', async () => {
    const arbitraryKey = fc.record({
      status: fc.constantFrom('idle', 'running', 'failed', 'done'),
      attempts: fc.integer({ min: 0, max: 5 }),
      outcome: fc.constantFrom(undefined, 'failed', 'lease-lost'),
      leaseHeld: fc.boolean(),
      doneTtl: fc.boolean(),
      withValue: fc.boolean(),
      token: fc.integer({ min: 1, max: 1_000_000 }),
      /** The counter: none, at the state's token, or ahead of it (a reset after that attempt, say). */
      fenceAhead: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }),
      maxAttempts: fc.integer({ min: 1, max: 5 }),
    });
    await fc.assert(
      fc.asyncProperty(arbitraryKey, async (k) => {
        const names = fresh();
        if (k.status !== 'idle') {
          const common = {
            token: k.token,
            owner: 'node-0',
            attempts: k.attempts,
            startedAt: 1_700_000_000_000,
          };
          const raw: RawState =
            k.status === 'running'
              ? { status: 'running', ...common }
              : k.status === 'failed'
                ? {
                    status: 'failed',
                    ...common,
                    finishedAt: 1_700_000_000_100,
                    error: JSON.stringify({ name: 'Error', message: 'boom' }),
                    outcome: k.outcome,
                  }
                : {
                    status: 'done',
                    ...common,
                    finishedAt: 1_700_000_000_100,
                    value: k.withValue ? '{"n":1}' : undefined,
                    doneTtlMs: k.doneTtl ? 60_000 : undefined,
                  };
          await writeState(redis, names, raw, k.status === 'done' && k.doneTtl ? 60_000 : undefined);
        }
        if (k.leaseHeld) await redis.set(names.lease, OTHER, 'PX', LEASE_MS);
        if (k.fenceAhead !== undefined) await redis.set(names.fence, String(k.token + k.fenceAhead));

        const snapshot = await read(driver, names);
        const decision = decide(snapshot, k.maxAttempts);
        const stateBefore = await redis.hgetall(names.state);
        const reply = await claim(driver, names, claimArgs({ maxAttempts: k.maxAttempts }));

        if (decision.kind === 'lead') {
          expect(reply.kind).toBe('claimed');
          if (reply.kind !== 'claimed') return;
          expect(reply.attempt).toBe(decision.attempt);
          expect(reply.replaced).toEqual(snapshot.state);
          expect(previousAttempt(reply.replaced)).toEqual(decision.previous);
          expect(reply.token).toBeGreaterThan(snapshot.fence);
          expect(await redis.get(names.lease)).toBe(LEASE);
        } else {
          expect(reply.kind).toBe('refused');
          if (reply.kind !== 'refused') return;
          expect(reply.snapshot.state).toEqual(snapshot.state);
          expect(await redis.hgetall(names.state)).toEqual(stateBefore);
          expect(await redis.get(names.lease)).toBe(k.leaseHeld ? OTHER : null);
        }
      }),
      { numRuns: 100 },
    );
  });
});

describe('read', () => {
  it('reads an idle key: no state, no lease, fence 0, and creates nothing', async () => {
    const names = fresh();
    const snapshot = await unchangedBy(redis, names, () => read(driver, names));
    expect(snapshot).toEqual({ state: IDLE, leasePttl: -2, statePttl: -1, fence: 0 });
    expect(await redis.exists(names.state, names.lease, names.fence)).toBe(0);
  });

  it('reads a running attempt with how long its lease has left and the fence, changing nothing', async () => {
    const names = fresh();
    const { token, startedAt } = await claimed(names);
    const snapshot = await unchangedBy(redis, names, () => read(driver, names));
    expect(snapshot.state).toEqual({
      ...IDLE,
      status: 'running',
      token,
      owner: OWNER,
      attempts: 1,
      startedAt,
    });
    expect(snapshot.leasePttl).toBeGreaterThan(LEASE_MS - 1000);
    expect(snapshot.leasePttl).toBeLessThanOrEqual(LEASE_MS);
    expect(snapshot.statePttl).toBe(-1);
    expect(snapshot.fence).toBe(token);
  });

  it('reads a done key with how long it has left, the lease and the fence not read, changing nothing', async () => {
    const names = fresh();
    await writeState(redis, names, doneState({ doneTtlMs: 60_000 }), 60_000);
    await redis.set(names.fence, '10');
    const snapshot = await unchangedBy(redis, names, () => read(driver, names));
    expect(snapshot.state).toEqual(decodeState(flatOf(fieldsOf(doneState({ doneTtlMs: 60_000 })))));
    expect(snapshot.state).toMatchObject({ status: 'done', valueJson: '{"applied":1}', doneTtlMs: 60_000 });
    expect(snapshot.statePttl).toBeGreaterThan(59_000);
    expect(snapshot.statePttl).toBeLessThanOrEqual(60_000);
    expect(snapshot.leasePttl).toBe(-2);
    expect(snapshot.fence).toBe(0);
  });

  it('reads the fence of a failed key, and of an idle key that was reset', async () => {
    const failed = fresh();
    await writeState(redis, failed, failedState({ token: 42 }));
    await redis.set(failed.fence, '42');
    expect(await read(driver, failed)).toMatchObject({ state: { status: 'failed', token: 42 }, fence: 42 });

    const wasReset = fresh();
    await redis.set(wasReset.fence, '77');
    expect(await read(driver, wasReset)).toEqual({ state: IDLE, leasePttl: -2, statePttl: -1, fence: 77 });
  });

  it('reads a lease held on an idle key (a quorum claim half-way through its masters)', async () => {
    const names = fresh();
    await redis.set(names.lease, OTHER, 'PX', 5_000);
    const snapshot = await unchangedBy(redis, names, () => read(driver, names));
    expect(snapshot.state).toEqual(IDLE);
    expect(snapshot.leasePttl).toBeGreaterThan(4_000);
  });
});

describe('renew', () => {
  it('extends our lease back to leaseMs', async () => {
    const names = fresh();
    await claimed(names);
    await redis.pexpire(names.lease, 1_000); // most of the lease has gone by
    expect(await renew(driver, names, { leaseValue: LEASE, leaseMs: LEASE_MS })).toBe(true);
    expect(await redis.pttl(names.lease)).toBeGreaterThan(LEASE_MS - 1000);
    expect(await redis.get(names.lease)).toBe(LEASE);
  });

  it("refuses (false) someone else's lease, and leaves it as it is", async () => {
    const names = fresh();
    await redis.set(names.lease, OTHER, 'PX', 5_000);
    const renewed = await unchangedBy(redis, names, () =>
      renew(driver, names, { leaseValue: LEASE, leaseMs: LEASE_MS }),
    );
    expect(renewed).toBe(false);
  });

  it('refuses (false) an expired lease, and does not bring it back', async () => {
    const names = fresh();
    await claimed(names, { leaseMs: TINY_MS });
    await leaseExpired(names);
    expect(await renew(driver, names, { leaseValue: LEASE, leaseMs: LEASE_MS })).toBe(false);
    expect(await redis.exists(names.lease)).toBe(0);
  });
});

describe('complete', () => {
  it('records the value, releases the lease, sets the TTL and publishes the done state', async () => {
    const names = fresh();
    const { token, startedAt } = await claimed(names);
    const done = await listen(names.done);
    const reply = await complete(driver, names, completeArgs(token, { doneTtlMs: 60_000 }));
    expect(reply).toEqual({ ok: true });

    const state = await redis.hgetall(names.state);
    expect(state).toEqual({
      status: 'done',
      token: String(token),
      owner: OWNER,
      attempts: '1',
      startedAt: String(startedAt),
      finishedAt: expect.stringMatching(/^\d+$/),
      doneTtlMs: '60000',
      value: '{"applied":12}',
    });
    expect(Number(state.finishedAt)).toBeGreaterThanOrEqual(startedAt);
    expect(await redis.exists(names.lease)).toBe(0);
    const pttl = await redis.pttl(names.state);
    expect(pttl).toBeGreaterThan(59_000);
    expect(pttl).toBeLessThanOrEqual(60_000);
    expect(await redis.get(names.fence)).toBe(String(token));

    const message = decodeMessage(await done.next());
    expect(message).toEqual({ state: decodeState(flatOf(state)), valueOmitted: false });
  });

  it('keeps the done state until reset when doneTtlMs is not given, and records no value for undefined', async () => {
    const names = fresh();
    const { token } = await claimed(names);
    const done = await listen(names.done);
    expect(await complete(driver, names, completeArgs(token, { valueJson: undefined }))).toEqual({
      ok: true,
    });
    const state = await redis.hgetall(names.state);
    expect(Object.keys(state).sort()).toEqual([
      'attempts',
      'finishedAt',
      'owner',
      'startedAt',
      'status',
      'token',
    ]);
    expect(await redis.pttl(names.state)).toBe(-1);
    const message = decodeMessage(await done.next());
    expect(message?.state).toMatchObject({
      status: 'done',
      token,
      valueJson: undefined,
      doneTtlMs: undefined,
    });
    expect(message?.valueOmitted).toBe(false);
  });

  it("keeps the leader's traceparent (ARGV[8]) as `trace`, in the state and in the message", async () => {
    const names = fresh();
    const { token } = await claimed(names);
    const done = await listen(names.done);
    const trace = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    expect(await complete(driver, names, completeArgs(token, { trace }))).toEqual({ ok: true });
    expect(await redis.hget(names.state, 'trace')).toBe(trace);
    expect(decodeMessage(await done.next())?.state.trace).toBe(trace);
    expect((await read(driver, names)).state.trace).toBe(trace);
  });

  it('publishes a value of exactly 16 KiB inline', async () => {
    const names = fresh();
    const { token } = await claimed(names);
    const done = await listen(names.done);
    const valueJson = JSON.stringify('x'.repeat(16_384 - 2));
    expect(valueJson).toHaveLength(16_384);
    await complete(driver, names, completeArgs(token, { valueJson }));
    expect(decodeMessage(await done.next())).toMatchObject({ state: { valueJson }, valueOmitted: false });
  });

  it('leaves a value over 16 KiB out of the message (valueOmitted), while the state holds all of it', async () => {
    const names = fresh();
    const { token } = await claimed(names);
    const done = await listen(names.done);
    const valueJson = JSON.stringify({ blob: 'y'.repeat(100_000) });
    expect(await complete(driver, names, completeArgs(token, { valueJson }))).toEqual({ ok: true });
    const text = await done.next();
    expect(text.length).toBeLessThan(1_000);
    const message = decodeMessage(text);
    expect(message?.valueOmitted).toBe(true);
    expect(message?.state).toMatchObject({ status: 'done', token, valueJson: undefined });
    expect(await redis.hget(names.state, 'value')).toBe(valueJson);
    expect((await read(driver, names)).state.valueJson).toBe(valueJson);
  });

  it('is idempotent: the same complete again answers ok, publishes nothing and changes nothing', async () => {
    const names = fresh();
    const { token } = await claimed(names);
    const done = await listen(names.done);
    const args = completeArgs(token, { doneTtlMs: 60_000 });
    expect(await complete(driver, names, args)).toEqual({ ok: true });
    await done.next();
    const again = await unchangedBy(redis, names, () => complete(driver, names, args));
    expect(again).toEqual({ ok: true });
    await done.expectSilent();
  });

  it('refuses a lease that is not ours (not-holder), changing nothing and publishing nothing', async () => {
    const names = fresh();
    const { token } = await claimed(names);
    const done = await listen(names.done);
    await redis.set(names.lease, OTHER, 'PX', LEASE_MS); // taken over
    const reply = await unchangedBy(redis, names, () => complete(driver, names, completeArgs(token)));
    expect(reply).toEqual({ ok: false, reason: 'not-holder' });
    await done.expectSilent();
  });

  it('refuses once our lease has expired (not-holder): a stale leader records nothing', async () => {
    const names = fresh();
    const { token } = await claimed(names, { leaseMs: TINY_MS });
    await leaseExpired(names);
    const reply = await unchangedBy(redis, names, () => complete(driver, names, completeArgs(token)));
    expect(reply).toEqual({ ok: false, reason: 'not-holder' });
    expect(await redis.hget(names.state, 'status')).toBe('running');
  });

  it("refuses a token that is not the running attempt's (not-running), changing nothing", async () => {
    const names = fresh();
    const { token } = await claimed(names);
    const done = await listen(names.done);
    for (const wrong of [token - 1, token + 1]) {
      const reply = await unchangedBy(redis, names, () => complete(driver, names, completeArgs(wrong)));
      expect(reply).toEqual({ ok: false, reason: 'not-running' });
    }
    await done.expectSilent();
  });

  it('refuses after a reset (not-running), and does not resurrect the done state', async () => {
    const names = fresh();
    const { token } = await claimed(names);
    await redis.del(names.state); // the state is gone while our lease is held (a reset raced us)
    const reply = await unchangedBy(redis, names, () => complete(driver, names, completeArgs(token)));
    expect(reply).toEqual({ ok: false, reason: 'not-running' });
  });
});

describe('fail', () => {
  it('records the failed attempt with its error and outcome, releases our lease and publishes it', async () => {
    const names = fresh();
    const { token, startedAt } = await claimed(names);
    const done = await listen(names.done);
    expect(await fail(driver, names, failArgs(token))).toEqual({ ok: true });
    const state = await redis.hgetall(names.state);
    expect(state).toEqual({
      status: 'failed',
      token: String(token),
      owner: OWNER,
      attempts: '1',
      startedAt: String(startedAt),
      finishedAt: expect.stringMatching(/^\d+$/),
      error: JSON.stringify({ name: 'TypeError', message: 'boom' }),
      outcome: 'failed',
    });
    expect(await redis.exists(names.lease)).toBe(0);
    expect(await redis.pttl(names.state)).toBe(-1);
    expect(await redis.get(names.fence)).toBe(String(token));
    const message = decodeMessage(await done.next());
    expect(message).toEqual({ state: decodeState(flatOf(state)), valueOmitted: false });
    expect(message?.state.error).toEqual({ name: 'TypeError', message: 'boom' });
  });

  it('accepts an expired lease, recording lease-lost after the fact', async () => {
    const names = fresh();
    const { token } = await claimed(names, { leaseMs: TINY_MS });
    const done = await listen(names.done);
    await leaseExpired(names);
    const error = { name: 'LeaseLostError', message: 'renewal not proven in time' };
    expect(await fail(driver, names, failArgs(token, { outcome: 'lease-lost', error }))).toEqual({
      ok: true,
    });
    expect(await redis.hgetall(names.state)).toMatchObject({ status: 'failed', outcome: 'lease-lost' });
    expect(decodeMessage(await done.next())?.state).toMatchObject({
      status: 'failed',
      outcome: 'lease-lost',
      error,
    });
  });

  it('refuses when another holder has the lease (not-holder), changing nothing', async () => {
    const names = fresh();
    const { token } = await claimed(names);
    const done = await listen(names.done);
    await redis.set(names.lease, OTHER, 'PX', LEASE_MS);
    const reply = await unchangedBy(redis, names, () => fail(driver, names, failArgs(token)));
    expect(reply).toEqual({ ok: false, reason: 'not-holder' });
    await done.expectSilent();
  });

  it('refuses a stale token (not-running), changing nothing', async () => {
    const names = fresh();
    const { token } = await claimed(names);
    const done = await listen(names.done);
    const reply = await unchangedBy(redis, names, () => fail(driver, names, failArgs(token - 1)));
    expect(reply).toEqual({ ok: false, reason: 'not-running' });
    await done.expectSilent();
  });

  it('refuses a stale leader whose lease expired and whose key was taken over', async () => {
    const names = fresh();
    const first = await claimed(names, { leaseMs: TINY_MS });
    await leaseExpired(names);
    const second = await claimed(names, { leaseValue: OTHER });
    expect(await fail(driver, names, failArgs(second.token, { leaseValue: OTHER }))).toEqual({ ok: true });
    // The first leader, late, with its lease long gone: its attempt is no longer the running one.
    const reply = await unchangedBy(redis, names, () => fail(driver, names, failArgs(first.token)));
    expect(reply).toEqual({ ok: false, reason: 'not-running' });
  });

  it('refuses a second fail of the same attempt (not-running)', async () => {
    const names = fresh();
    const { token } = await claimed(names);
    expect(await fail(driver, names, failArgs(token))).toEqual({ ok: true });
    const reply = await unchangedBy(redis, names, () => fail(driver, names, failArgs(token)));
    expect(reply).toEqual({ ok: false, reason: 'not-running' });
  });
});

describe('abandon', () => {
  it('gives back a claim of an idle key: no state, no lease, the counter at the token, {} published', async () => {
    const names = fresh();
    const { token } = await claimed(names);
    const done = await listen(names.done);
    expect(await abandon(driver, names, { leaseValue: LEASE, token, sharded: false })).toEqual({ ok: true });
    expect(await redis.exists(names.state)).toBe(0);
    expect(await redis.exists(names.lease)).toBe(0);
    expect(await redis.get(names.fence)).toBe(String(token));
    const text = await done.next();
    expect(text).toBe('{}');
    expect(decodeMessage(text)).toEqual({ state: IDLE, valueOmitted: false });
    // The next claim is attempt 1 again, with a higher token.
    const next = await claimed(names);
    expect(next.attempt).toBe(1);
    expect(next.token).toBeGreaterThan(token);
  });

  it('puts a failed state back exactly (same fields, same attempts): no attempt is spent', async () => {
    const names = fresh();
    const before = fieldsOf(failedState({ attempts: 2 }));
    await writeState(redis, names, failedState({ attempts: 2 }));
    await redis.set(names.fence, '10');
    const { token, attempt } = await claimed(names);
    const done = await listen(names.done);
    expect(attempt).toBe(3);
    expect(await abandon(driver, names, { leaseValue: LEASE, token, sharded: false })).toEqual({ ok: true });
    expect(await redis.hgetall(names.state)).toEqual(before);
    expect(await redis.exists(names.lease)).toBe(0);
    expect(await redis.get(names.fence)).toBe(String(token));
    expect(decodeMessage(await done.next())).toEqual({
      state: decodeState(flatOf(before)),
      valueOmitted: false,
    });
    // Still attempt 3 next time.
    expect((await claimed(names)).attempt).toBe(3);
  });

  it('gives back a claim whose lease already expired (the lease may be free)', async () => {
    const names = fresh();
    const { token } = await claimed(names, { leaseMs: TINY_MS });
    await leaseExpired(names);
    expect(await abandon(driver, names, { leaseValue: LEASE, token, sharded: false })).toEqual({ ok: true });
    expect(await redis.exists(names.state)).toBe(0);
  });

  it('puts a crashed attempt it took over back exactly, its own `prev` included', async () => {
    const names = fresh();
    await writeState(redis, names, failedState({ attempts: 1 }));
    await redis.set(names.fence, '10');
    await claimed(names); // attempt 2, which then crashes before fn starts
    await redis.del(names.lease);
    const crashed = await redis.hgetall(names.state);
    const takeover = await claimed(names, { leaseValue: OTHER });
    expect(takeover.attempt).toBe(3);
    expect(
      await abandon(driver, names, { leaseValue: OTHER, token: takeover.token, sharded: false }),
    ).toEqual({
      ok: true,
    });
    expect(await redis.hgetall(names.state)).toEqual(crashed);
  });

  it('never forgets a failed attempt: a late give-back by a crashed leader, after its takeover was given back, restores the failed state', async () => {
    const names = fresh();
    const failed = fieldsOf(failedState({ attempts: 1 }));
    await writeState(redis, names, failedState({ attempts: 1 }));
    await redis.set(names.fence, '10');
    const paused = await claimed(names); // attempt 2; its process pauses past its lease
    await redis.del(names.lease);
    const takeover = await claimed(names, { leaseValue: OTHER });
    expect(
      await abandon(driver, names, { leaseValue: OTHER, token: takeover.token, sharded: false }),
    ).toEqual({
      ok: true,
    });
    // The paused leader wakes up; its fn never started, so it gives its claim back.
    expect(await abandon(driver, names, { leaseValue: LEASE, token: paused.token, sharded: false })).toEqual({
      ok: true,
    });
    expect(await redis.hgetall(names.state)).toEqual(failed);
  });

  it('refuses when the claim is no longer the running attempt (given back already, or completed)', async () => {
    const names = fresh();
    const { token } = await claimed(names);
    expect(await abandon(driver, names, { leaseValue: LEASE, token, sharded: false })).toEqual({ ok: true });
    const again = await unchangedBy(redis, names, () =>
      abandon(driver, names, { leaseValue: LEASE, token, sharded: false }),
    );
    expect(again).toEqual({ ok: false, reason: 'not-running' });

    const completed = fresh();
    const done = await listen(completed.done);
    const claim2 = await claimed(completed);
    expect(await complete(driver, completed, completeArgs(claim2.token))).toEqual({ ok: true });
    await done.next();
    const late = await unchangedBy(redis, completed, () =>
      abandon(driver, completed, { leaseValue: LEASE, token: claim2.token, sharded: false }),
    );
    expect(late).toEqual({ ok: false, reason: 'not-running' });
    await done.expectSilent();
  });

  it('refuses when someone else holds the lease (not-holder), changing nothing', async () => {
    const names = fresh();
    const { token } = await claimed(names);
    await redis.set(names.lease, OTHER, 'PX', LEASE_MS);
    const reply = await unchangedBy(redis, names, () =>
      abandon(driver, names, { leaseValue: LEASE, token, sharded: false }),
    );
    expect(reply).toEqual({ ok: false, reason: 'not-holder' });
  });
});

describe('reset', () => {
  it('refuses with busy, naming the owner, while a lease is held; changes nothing and publishes nothing', async () => {
    const { ns, names } = freshNamespace();
    const done = await listen(names.done);
    const control = await listen(controlChannel(ns));
    await claimed(names);
    const reply = await unchangedBy(redis, names, () =>
      reset(driver, names, { force: false, sharded: false, controlChannel: controlChannel(ns) }),
    );
    expect(reply).toEqual({ ok: false, owner: OWNER });
    await done.expectSilent();
    await control.expectSilent();
  });

  it('refuses with busy and no owner when a lease is held on an idle key', async () => {
    const { ns, names } = freshNamespace();
    await redis.set(names.lease, OTHER, 'PX', LEASE_MS);
    const reply = await unchangedBy(redis, names, () =>
      reset(driver, names, { force: false, sharded: false, controlChannel: controlChannel(ns) }),
    );
    expect(reply).toEqual({ ok: false, owner: undefined });
  });

  it('forced, deletes the lease and the state, raises the counter to the server clock, and publishes on both channels the counter it found', async () => {
    const { ns, names } = freshNamespace();
    const done = await listen(names.done);
    const control = await listen(controlChannel(ns));
    const { token } = await claimed(names);
    const reply = await reset(driver, names, {
      force: true,
      sharded: false,
      controlChannel: controlChannel(ns),
    });
    // It names the counter it found (the attempt it ended), and raises it, so that a claim from before
    // the reset, still on its way, is refused when it lands.
    expect(reply).toEqual({ ok: true, existed: true, fence: token });
    const fence = token;
    const raised = Number(await redis.get(names.fence));
    expect(raised).toBeGreaterThan(token);
    expect(raised).toBeLessThanOrEqual(await serverMicros());
    expect(await redis.exists(names.state)).toBe(0);
    expect(await redis.exists(names.lease)).toBe(0);
    expect(
      await claim(driver, names, { ...claimArgs({ leaseValue: 'late' }), token: token + 1 }),
    ).toMatchObject({
      kind: 'stale',
    });

    const doneText = await done.next();
    expect(doneText).toBe('{}');
    expect(decodeMessage(doneText)).toEqual({ state: IDLE, valueOmitted: false });
    const controlText = await control.next();
    const notice: unknown[] = JSON.parse(controlText);
    expect(notice).toHaveLength(3);
    expect(notice.slice(0, 2)).toEqual(['reset', names.key]);
    expect(Number(notice[2])).toBe(fence);
    expect(parseNotice(controlText)).toEqual({ key: names.key, fence });

    // The next run starts over: attempt 1, no previous, a higher token.
    const next = await claimed(names);
    expect(next).toMatchObject({ attempt: 1, replaced: IDLE });
    expect(next.token).toBeGreaterThan(token);
  });

  it('resets a done key without force (no lease held): existed true', async () => {
    const { ns, names } = freshNamespace();
    await writeState(redis, names, doneState(), 60_000);
    await redis.set(names.fence, '10');
    const reply = await reset(driver, names, {
      force: false,
      sharded: false,
      controlChannel: controlChannel(ns),
    });
    expect(reply).toEqual({ ok: true, existed: true, fence: 10 });
    expect(await redis.exists(names.state)).toBe(0);
    // A counter below the server clock goes up to it; one above it stays.
    expect(Number(await redis.get(names.fence))).toBeGreaterThan(10);
    await redis.set(names.fence, String(2 ** 52));
    expect(
      await reset(driver, names, { force: false, sharded: false, controlChannel: controlChannel(ns) }),
    ).toEqual({
      ok: true,
      existed: false,
      fence: 2 ** 52,
    });
  });

  it('answers existed false for a key with no state, and still tells everyone', async () => {
    const { ns, names } = freshNamespace();
    const done = await listen(names.done);
    const control = await listen(controlChannel(ns));
    const reply = await reset(driver, names, {
      force: false,
      sharded: false,
      controlChannel: controlChannel(ns),
    });
    // It found no counter: it ended no attempt.
    expect(reply).toEqual({ ok: true, existed: false, fence: 0 });
    expect(decodeMessage(await done.next())).toEqual({ state: IDLE, valueOmitted: false });
    expect(parseNotice(await control.next())).toEqual({ key: names.key, fence: 0 });
    // Only the counter is written, raised to the server clock (a claim on its way to this master may
    // not have landed yet).
    expect(await redis.exists(names.state, names.lease)).toBe(0);
    expect(Number(await redis.get(names.fence))).toBeGreaterThan(0);
  });
});

describe('repair', () => {
  const doneAt = (token: number, overrides: Partial<StoredState> = {}): StoredState => ({
    ...IDLE,
    status: 'done',
    token,
    owner: 'node-0',
    attempts: 2,
    startedAt: 1_700_000_000_000,
    finishedAt: 1_700_000_000_500,
    valueJson: '{"applied":12}',
    doneTtlMs: 60_000,
    ...overrides,
  });

  it('copies a done state to an empty master: exactly the known fields, the TTL, the counter raised', async () => {
    const names = fresh();
    expect(await repair(driver, names, { state: doneAt(500), statePttl: 50_000 })).toBe(true);
    expect(await redis.hgetall(names.state)).toEqual({
      status: 'done',
      token: '500',
      owner: 'node-0',
      attempts: '2',
      startedAt: '1700000000000',
      finishedAt: '1700000000500',
      value: '{"applied":12}',
      doneTtlMs: '60000',
    });
    const pttl = await redis.pttl(names.state);
    expect(pttl).toBeGreaterThan(49_000);
    expect(pttl).toBeLessThanOrEqual(50_000);
    expect(await redis.get(names.fence)).toBe('500');
    expect((await read(driver, names)).state).toEqual(doneAt(500));
  });

  it("copies the leader's traceparent with the state", async () => {
    const names = fresh();
    const state = doneAt(500, { trace: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
    expect(await repair(driver, names, { state, statePttl: -1 })).toBe(true);
    expect((await read(driver, names)).state).toEqual(state);
  });

  it('copies a done state that does not expire, with no value, without a TTL', async () => {
    const names = fresh();
    const state = doneAt(500, { valueJson: undefined, doneTtlMs: undefined });
    expect(await repair(driver, names, { state, statePttl: -1 })).toBe(true);
    expect(Object.keys(await redis.hgetall(names.state)).sort()).toEqual([
      'attempts',
      'finishedAt',
      'owner',
      'startedAt',
      'status',
      'token',
    ]);
    expect(await redis.pttl(names.state)).toBe(-1);
    expect((await read(driver, names)).state).toEqual(state);
  });

  it('copies over the same attempt still running there (it saw the claim, missed the complete)', async () => {
    const names = fresh();
    await writeState(redis, names, {
      status: 'running',
      token: 500,
      owner: 'node-0',
      attempts: 2,
      startedAt: 1,
    });
    await redis.set(names.fence, '500');
    expect(await repair(driver, names, { state: doneAt(500), statePttl: -1 })).toBe(true);
    expect(await redis.hget(names.state, 'status')).toBe('done');
    expect(await redis.get(names.fence)).toBe('500');
  });

  it('copies over an older failed attempt it missed the later claim of, raising the counter', async () => {
    const names = fresh();
    await writeState(redis, names, failedState({ token: 400 }));
    await redis.set(names.fence, '400');
    expect(await repair(driver, names, { state: doneAt(500), statePttl: -1 })).toBe(true);
    expect(await redis.hget(names.state, 'token')).toBe('500');
    expect(await redis.get(names.fence)).toBe('500');
  });

  it('refuses when the master holds a newer token, changing nothing', async () => {
    const names = fresh();
    await writeState(redis, names, {
      status: 'running',
      token: 600,
      owner: 'node-1',
      attempts: 3,
      startedAt: 1,
    });
    await redis.set(names.fence, '600');
    const copied = await unchangedBy(redis, names, () =>
      repair(driver, names, { state: doneAt(500), statePttl: -1 }),
    );
    expect(copied).toBe(false);
  });

  it('refuses when the master holds this done state already, changing nothing', async () => {
    const names = fresh();
    expect(await repair(driver, names, { state: doneAt(500), statePttl: 50_000 })).toBe(true);
    const copied = await unchangedBy(redis, names, () =>
      repair(driver, names, { state: doneAt(500), statePttl: 50_000 }),
    );
    expect(copied).toBe(false);
  });

  it('never undoes a reset: refuses when the counter is at the token while the state is older', async () => {
    const wasReset = fresh();
    await redis.set(wasReset.fence, '500'); // saw attempt 500, then was reset: no state
    expect(
      await unchangedBy(redis, wasReset, () =>
        repair(driver, wasReset, { state: doneAt(500), statePttl: -1 }),
      ),
    ).toBe(false);

    const resetThenFailed = fresh();
    await writeState(redis, resetThenFailed, failedState({ token: 400 }));
    await redis.set(resetThenFailed.fence, '500');
    expect(
      await unchangedBy(redis, resetThenFailed, () =>
        repair(driver, resetThenFailed, { state: doneAt(500), statePttl: -1 }),
      ),
    ).toBe(false);
  });
});

describe('sharded pub/sub', () => {
  const cases: Array<[string, (names: KeyNames, ns: string) => Promise<unknown>, string | undefined]> = [
    [
      'complete',
      async (names) => complete(driver, names, completeArgs((await claimed(names)).token, { sharded: true })),
      'done',
    ],
    [
      'fail',
      async (names) => fail(driver, names, failArgs((await claimed(names)).token, { sharded: true })),
      'failed',
    ],
    [
      'abandon',
      async (names) =>
        abandon(driver, names, { leaseValue: LEASE, token: (await claimed(names)).token, sharded: true }),
      undefined,
    ],
    [
      'reset',
      (names, ns) => reset(driver, names, { force: true, sharded: true, controlChannel: controlChannel(ns) }),
      undefined,
    ],
  ];

  it.each(cases)('%s with sharded: true publishes with SPUBLISH, not PUBLISH', async (_, call, status) => {
    const { ns, names } = freshNamespace();
    const sharded = await listen(names.done, true);
    const plain = await listen(names.done);
    expect(await call(names, ns)).toMatchObject({ ok: true });
    const message = decodeMessage(await sharded.next());
    expect(message?.state.status).toBe(status ?? 'idle');
    await plain.expectSilent();
  });

  it('reset with sharded: true still announces on the control channel with plain PUBLISH', async () => {
    const { ns, names } = freshNamespace();
    const control = await listen(controlChannel(ns));
    await reset(driver, names, { force: true, sharded: true, controlChannel: controlChannel(ns) });
    expect(parseNotice(await control.next())).toMatchObject({ key: names.key });
  });
});

describe('a foreign value at one of our keys', () => {
  type At = 'state' | 'lease' | 'fence';
  interface Foreign {
    at: At;
    detail: string;
    plant(names: KeyNames): Promise<unknown>;
  }
  const stateString: Foreign = {
    at: 'state',
    detail: 'a string',
    plant: (n) => redis.set(n.state, 'not ours'),
  };
  const stateHash: Foreign = {
    at: 'state',
    detail: 'a hash without a redis-once status',
    plant: (n) => redis.hset(n.state, 'name', 'someone else'),
  };
  const stateList: Foreign = { at: 'state', detail: 'a list', plant: (n) => redis.rpush(n.state, 'x') };
  const leaseHash: Foreign = { at: 'lease', detail: 'a hash', plant: (n) => redis.hset(n.lease, 'f', 'v') };
  // Our own lease value, but without an expiry: it would block the key forever.
  const leaseForever: Foreign = {
    at: 'lease',
    detail: 'a string without an expiry',
    plant: (n) => redis.set(n.lease, LEASE),
  };
  // Someone else's string without an expiry, where the leader's own lease should be.
  const leaseOthersForever: Foreign = {
    at: 'lease',
    detail: 'a string without an expiry',
    plant: (n) => redis.set(n.lease, 'someone else'),
  };
  const leaseHashForever: Foreign = {
    at: 'lease',
    detail: 'a hash without an expiry',
    plant: (n) => redis.hset(n.lease, 'f', 'v'),
  };
  const fenceList: Foreign = { at: 'fence', detail: 'a list', plant: (n) => redis.rpush(n.fence, '1') };
  const fenceText: Foreign = {
    at: 'fence',
    detail: 'a string that is not a counter',
    plant: (n) => redis.set(n.fence, '12abc'),
  };

  interface Case {
    script: string;
    /** Brings the key to where the script reaches the check (a claim, for the leader's scripts). */
    setup(names: KeyNames): Promise<number>;
    call(names: KeyNames, token: number, ns: string): Promise<unknown>;
    foreign: Foreign[];
  }
  const nothing = async () => 0;
  const claimFirst = async (names: KeyNames) => (await claimed(names)).token;
  const cases: Case[] = [
    {
      script: 'claim',
      setup: nothing,
      call: (names) => claim(driver, names, claimArgs()),
      foreign: [stateString, stateHash, leaseForever, leaseHashForever, fenceList, fenceText],
    },
    {
      script: 'read',
      setup: nothing,
      call: (names) => read(driver, names),
      foreign: [stateString, stateHash, leaseForever, fenceList, fenceText],
    },
    {
      script: 'renew',
      setup: claimFirst,
      call: (names) => renew(driver, names, { leaseValue: LEASE, leaseMs: LEASE_MS }),
      foreign: [leaseHash],
    },
    {
      script: 'complete',
      setup: claimFirst,
      call: (names, token) => complete(driver, names, completeArgs(token)),
      foreign: [stateString, stateList, leaseHash, leaseOthersForever],
    },
    {
      script: 'fail',
      setup: claimFirst,
      call: (names, token) => fail(driver, names, failArgs(token)),
      foreign: [stateString, stateList, leaseHash, leaseOthersForever],
    },
    {
      script: 'abandon',
      setup: claimFirst,
      call: (names, token) => abandon(driver, names, { leaseValue: LEASE, token, sharded: false }),
      foreign: [stateString, stateList, leaseHash, leaseOthersForever],
    },
    {
      script: 'reset',
      setup: nothing,
      call: (names, _, ns) =>
        reset(driver, names, { force: true, sharded: false, controlChannel: controlChannel(ns) }),
      foreign: [stateString, stateHash, leaseHash, leaseForever, fenceList, fenceText],
    },
    {
      script: 'repair',
      setup: nothing,
      call: (names) =>
        repair(driver, names, {
          state: { ...IDLE, status: 'done', token: 5, attempts: 1, valueJson: '1' },
          statePttl: -1,
        }),
      foreign: [stateString, stateHash, fenceList, fenceText],
    },
  ];
  const rows = cases.flatMap((c) =>
    c.foreign.map((f) => ({ ...c, f, label: `${f.detail} at the ${f.at} key` })),
  );

  it.each(rows)(
    '$script, given $label, throws OnceForeignValueError naming it and changes nothing',
    async (row) => {
      const { ns, names } = freshNamespace();
      const done = await listen(names.done);
      const token = await row.setup(names);
      await redis.del(names[row.f.at]);
      await row.f.plant(names);
      const error = await unchangedBy(redis, names, () => rejection(() => row.call(names, token, ns)));
      expectForeign(error, names, names[row.f.at], row.f.detail);
      await done.expectSilent();
    },
  );

  it('claim waits out a key of another type with a TTL at the lease key, like a lease, never overwriting it', async () => {
    const names = fresh();
    await redis.hset(names.lease, 'f', 'v');
    await redis.pexpire(names.lease, 20_000);
    const reply = await unchangedBy(redis, names, () => claim(driver, names, claimArgs()));
    expect(reply).toMatchObject({ kind: 'refused', snapshot: { state: IDLE } });
    expect(await redis.type(names.lease)).toBe('hash');
  });

  it('the before/after check notices a write and an extended TTL (so the "changes nothing" checks can fail)', async () => {
    const names = fresh();
    const idle = await rawKeys(redis, names);
    await claimed(names);
    const held = await rawKeys(redis, names);
    expect(() => expectSameKeys(idle, held)).toThrow();
    await redis.pexpire(names.lease, 1_000);
    const shortened = await rawKeys(redis, names);
    await renew(driver, names, { leaseValue: LEASE, leaseMs: LEASE_MS });
    const renewed = await rawKeys(redis, names);
    expect(() => expectSameKeys(shortened, renewed)).toThrow();
    const again = await rawKeys(redis, names);
    expect(() => expectSameKeys(renewed, again)).not.toThrow();
  });
});
