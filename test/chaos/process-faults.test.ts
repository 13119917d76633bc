/**
 * A leader process that dies or stalls at each phase of its attempt — its claim on the way, mid-run,
 * its completion sent but unanswered, paused past its lease — against a real redis-server, with every
 * fn writing to an independent ledger that accepts only the highest fencing token (test/helpers/
 * ledger.ts). Each test records what it measured for docs/RELIABILITY.md.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createOnce } from '../../src/index.js';
import { scripts } from '../../src/scripts.js';
import { waitFor } from '../helpers/gate.js';
import { canInjectFaults } from '../helpers/redis-server.js';
import { recordFault } from '../helpers/reliability.js';
import { Worker } from '../helpers/worker.js';
import { faultHarness, KEY } from './harness.js';

const LEASE_MS = 1000;

const h = faultHarness('process-faults', { leaseMs: LEASE_MS });
const { config, ledgerFigures } = h;

async function statusOf(namespace: string) {
  const once = createOnce({ redis: h.redis.url, namespace });
  try {
    return await once.status(KEY);
  } finally {
    await once.close();
  }
}

/** Callers of `workers` that settled (a value or an error). */
function settled(workers: Worker[]): number {
  return workers.reduce((n, w) => n + w.results().length + w.errors().length, 0);
}

describe.skipIf(!canInjectFaults)('a leader process that dies or stalls', () => {
  it('killed while its claim is on the way: the claim lands after it died, and another node takes over once at the lease deadline', async () => {
    const namespace = `claiming-${randomUUID()}`;
    const slow = await h.proxy();
    const doomed = await Worker.start(config(namespace, 'doomed', { url: slow.url, fnMs: 30_000 }));
    const survivor = await Worker.start(config(namespace, 'survivor'));
    // The claim is held on the link for 300 ms; the leader dies once it has sent it.
    slow.set({ kind: 'delay', ms: 300 });
    const before = slow.requests;
    doomed.go();
    await waitFor(() => slow.sent(scripts.claim.sha, before), {
      what: "the doomed leader's claim to be sent",
    });
    await doomed.kill();
    const faultAt = performance.now();
    // The link still delivers what it holds: the dead leader's claim takes the key.
    await waitFor(async () => (await statusOf(namespace)).state === 'running', { what: 'the claim to land' });
    survivor.go();
    await survivor.finished();
    const settleMs = survivor.lastSettledAt()! - faultAt;

    // The claim landed after its sender died (the link delivers what it holds), and its lease ran out:
    // the survivor's is attempt 2, after a crashed one.
    expect(doomed.fnStarts()).toEqual([]);
    expect(survivor.fnStarts()).toEqual([
      expect.objectContaining({
        attempt: 2,
        previous: expect.objectContaining({ outcome: 'crashed', owner: 'doomed' }),
      }),
    ]);
    expect(survivor.results().map((r) => r.value.by)).toEqual(['survivor', 'survivor', 'survivor']);
    expect(settleMs).toBeLessThan(LEASE_MS + 1500);
    expect(h.ledger.accepted(`${namespace}:${KEY}`).map((w) => w.by)).toEqual(['survivor']);
    expect(await statusOf(namespace)).toMatchObject({ state: 'done', owner: 'survivor' });
    recordFault({
      id: 'leader-killed-claiming',
      runs: 1,
      callers: 6,
      ...ledgerFigures(namespace),
      done: 1,
      settled: settled([survivor]),
      diedWithProcess: 3,
      worstSettleMs: settleMs,
    });
  });

  it('killed mid-run: a follower takes over at the lease deadline with a higher token; fn completes once', async () => {
    const namespace = `running-${randomUUID()}`;
    const doomed = await Worker.start(config(namespace, 'doomed', { fnMs: 30_000 }));
    const survivor = await Worker.start(config(namespace, 'survivor'));
    doomed.go();
    const first = await doomed.next((e) => e.type === 'fn-start');
    survivor.go();
    await survivor.next((e) => e.type === 'ready');
    await doomed.kill();
    const faultAt = performance.now();
    await survivor.finished();
    const settleMs = survivor.lastSettledAt()! - faultAt;

    const takeover = survivor.fnStarts()[0]!;
    if (first.type !== 'fn-start') throw new Error('unreachable');
    expect(takeover.fencingToken).toBeGreaterThan(first.fencingToken);
    expect(takeover.previous).toMatchObject({ outcome: 'crashed', owner: 'doomed' });
    expect(settleMs).toBeLessThan(LEASE_MS + 1500);
    expect(h.ledger.accepted(`${namespace}:${KEY}`)).toEqual([
      { key: `${namespace}:${KEY}`, token: takeover.fencingToken, by: 'survivor' },
    ]);
    recordFault({
      id: 'leader-killed-running',
      runs: 1,
      callers: 6,
      ...ledgerFigures(namespace),
      done: 1,
      settled: settled([survivor]),
      diedWithProcess: 3,
      worstSettleMs: settleMs,
    });
  });

  it('killed after its complete was sent, before the reply came: every caller gets that value; fn never runs again', async () => {
    const namespace = `completing-${randomUUID()}`;
    const link = await h.proxy();
    const doomed = await Worker.start(config(namespace, 'doomed', { url: link.url, hold: true }));
    const follower = await Worker.start(config(namespace, 'follower'));
    doomed.go();
    const held = await doomed.next((e) => e.type === 'fn-holding');
    follower.go();
    // Redis hears the complete, but its reply never comes back.
    link.set({ kind: 'mute' });
    const faultAt = performance.now();
    doomed.release();
    await waitFor(async () => (await statusOf(namespace)).state === 'done', { what: 'the complete to land' });
    await doomed.kill();
    await follower.finished();
    const settleMs = follower.lastSettledAt()! - faultAt;

    if (held.type !== 'fn-holding') throw new Error('unreachable');
    expect(follower.fnStarts()).toEqual([]);
    expect(follower.results().map((r) => r.value)).toEqual(
      Array(3).fill({ by: 'doomed', token: held.fencingToken }),
    );
    expect(await statusOf(namespace)).toMatchObject({ state: 'done', owner: 'doomed', attempts: 1 });
    expect(h.ledger.accepted(`${namespace}:${KEY}`).map((w) => w.by)).toEqual(['doomed']);
    recordFault({
      id: 'leader-killed-completing',
      runs: 1,
      callers: 6,
      ...ledgerFigures(namespace),
      done: 1,
      settled: settled([follower]),
      diedWithProcess: 3,
      worstSettleMs: settleMs,
    });
  });

  it('paused past its lease and resumed: its signal aborts, its result is refused, and so is its late write', async () => {
    const namespace = `stopped-${randomUUID()}`;
    // fn ignores its signal and writes the ledger after 1.5 s of work: after the pause, stale.
    const stalled = await Worker.start(config(namespace, 'stalled', { fnMs: 1500 }));
    const fresh = await Worker.start(config(namespace, 'fresh'));
    stalled.go();
    const first = await stalled.next((e) => e.type === 'fn-start');
    stalled.signal('SIGSTOP');
    const faultAt = performance.now();
    fresh.go();
    await fresh.finished();
    stalled.signal('SIGCONT');
    await stalled.finished();
    const settleMs = Math.max(stalled.lastSettledAt()!, fresh.lastSettledAt()!) - faultAt;
    // Its fn, which ignores the signal, still ends its work and writes — after the new leader did.
    await waitFor(() => h.ledger.refused(`${namespace}:${KEY}`).length > 0, { what: 'the stale write' });

    if (first.type !== 'fn-start') throw new Error('unreachable');
    expect(stalled.events).toContainEqual({
      type: 'fn-aborted',
      nodeId: 'stalled',
      reason: 'LeaseLostError',
    });
    expect(stalled.errors()).toEqual([expect.objectContaining({ name: 'LeaseLostError' })]);
    const takeover = fresh.fnStarts()[0]!;
    expect(takeover.fencingToken).toBeGreaterThan(first.fencingToken);
    // The stale write came after the new leader's, with a lower token: refused.
    expect(h.ledger.refused(`${namespace}:${KEY}`)).toEqual([
      { key: `${namespace}:${KEY}`, token: first.fencingToken, by: 'stalled' },
    ]);
    expect(h.ledger.accepted(`${namespace}:${KEY}`).map((w) => w.by)).toEqual(['fresh']);
    expect(await statusOf(namespace)).toMatchObject({ state: 'done', owner: 'fresh' });
    recordFault({
      id: 'leader-stopped',
      runs: 1,
      callers: 6,
      ...ledgerFigures(namespace),
      done: 1,
      settled: settled([stalled, fresh]),
      worstSettleMs: settleMs,
    });
  });
});

describe.skipIf(!canInjectFaults)('redis-server restarted without persistence', () => {
  it('while a leader runs and followers wait: the key runs a second time, with a higher token that fences the first', async () => {
    const namespace = `restart-${randomUUID()}`;
    const key = `${namespace}:${KEY}`;
    // The first leader's fn ignores its signal and writes the ledger after 2.5 s.
    const first = await Worker.start(config(namespace, 'first', { fnMs: 2500, redisTimeoutMs: 1000 }));
    const waiters = await Promise.all(
      ['waiter-a', 'waiter-b'].map((id) => Worker.start(config(namespace, id, { redisTimeoutMs: 2000 }))),
    );
    first.go();
    const before = await first.next((e) => e.type === 'fn-start');
    for (const waiter of waiters) waiter.go();
    // Redis dies and comes back empty: the done state, the lease and the counter are gone.
    await h.redis.kill();
    const faultAt = performance.now();
    await h.redis.restart();
    await Promise.all(waiters.map((w) => w.finished(15_000)));
    await first.finished(15_000);
    await waitFor(() => h.ledger.refused(key).length + h.ledger.accepted(key).length === 2, {
      what: 'both runs to write the ledger',
    });
    const settleMs = Math.max(...[first, ...waiters].map((w) => w.lastSettledAt()!)) - faultAt;

    if (before.type !== 'fn-start') throw new Error('unreachable');
    const second = waiters.flatMap((w) => w.fnStarts());
    // One waiter ran it again, from attempt 1 (Redis forgot the first), with a higher token (floored
    // at the server's clock, which kept going).
    expect(second).toHaveLength(1);
    expect(second[0]).toMatchObject({ attempt: 1, previous: null });
    expect(second[0]!.fencingToken).toBeGreaterThan(before.fencingToken);
    // The first run's lease was gone: its fn heard, and its late write lost to the second's token.
    expect(first.events).toContainEqual({ type: 'fn-aborted', nodeId: 'first', reason: 'LeaseLostError' });
    expect(h.ledger.accepted(key).map((w) => w.token)).toEqual([second[0]!.fencingToken]);
    expect(h.ledger.refused(key).map((w) => w.token)).toEqual([before.fencingToken]);
    // Every caller settled with the second run's value, or (the first run's own caller) a typed error.
    const values = [first, ...waiters].flatMap((w) => w.results().map((r) => r.value.token));
    expect(new Set(values)).toEqual(new Set([second[0]!.fencingToken]));
    expect(first.errors().map((e) => e.name)).toEqual(['LeaseLostError']);
    recordFault({
      id: 'redis-restarted-empty',
      runs: 1,
      callers: 9,
      ...ledgerFigures(namespace),
      done: 1,
      settled: settled([first, ...waiters]),
      worstSettleMs: settleMs,
    });
  });
});

describe.skipIf(!canInjectFaults)('a leader whose event loop is blocked', () => {
  it('for twice its lease by CPU-bound work: the standby renewer keeps its lease; fn runs once, its write is the one accepted', async () => {
    const namespace = `blocked-${randomUUID()}`;
    const key = `${namespace}:${KEY}`;
    // fn blocks its event loop for 2 s of a 1 s lease: its own timers cannot run meanwhile.
    const blocked = await Worker.start(config(namespace, 'blocked', { blockMs: 2000, fnMs: 0 }));
    const follower = await Worker.start(config(namespace, 'follower'));
    blocked.go();
    const first = await blocked.next((e) => e.type === 'fn-start');
    const faultAt = performance.now();
    follower.go();
    await Promise.all([follower.finished(), blocked.finished()]);
    await waitFor(() => h.ledger.accepted(key).length === 1, {
      what: 'the blocked leader to write the ledger',
    });
    const settleMs = Math.max(blocked.lastSettledAt()!, follower.lastSettledAt()!) - faultAt;

    if (first.type !== 'fn-start') throw new Error('unreachable');
    expect(follower.fnStarts()).toEqual([]);
    expect([...blocked.errors(), ...follower.errors()]).toEqual([]);
    const value = { by: 'blocked', token: first.fencingToken };
    expect([...blocked.results(), ...follower.results()].map((r) => r.value)).toEqual(Array(6).fill(value));
    expect(h.ledger.accepted(key)).toEqual([{ key, token: first.fencingToken, by: 'blocked' }]);
    expect(h.ledger.refused(key)).toEqual([]);
    recordFault({
      id: 'leader-event-loop-blocked',
      runs: 1,
      callers: 6,
      ...ledgerFigures(namespace),
      done: 1,
      settled: settled([blocked, follower]),
      worstSettleMs: settleMs,
    });
  });

  it('past maxStallMs (a wedged loop): a follower takes over; the blocked caller gets LeaseLostError, its write is refused', async () => {
    const namespace = `wedged-${randomUUID()}`;
    const key = `${namespace}:${KEY}`;
    const wedged = await Worker.start(
      config(namespace, 'wedged', { blockMs: 2000, fnMs: 0, maxStallMs: 500 }),
    );
    const follower = await Worker.start(config(namespace, 'follower'));
    wedged.go();
    const first = await wedged.next((e) => e.type === 'fn-start');
    const faultAt = performance.now();
    follower.go();
    await follower.finished();
    await wedged.finished();
    await waitFor(() => h.ledger.refused(key).length + h.ledger.accepted(key).length === 2, {
      what: 'both to write the ledger',
    });
    const settleMs = Math.max(wedged.lastSettledAt()!, follower.lastSettledAt()!) - faultAt;

    if (first.type !== 'fn-start') throw new Error('unreachable');
    const takeover = follower.fnStarts()[0]!;
    expect(takeover).toMatchObject({ attempt: 2, previous: { outcome: 'crashed', owner: 'wedged' } });
    // fn's own caller gets LeaseLostError once fn returns (the lease expired while the loop was
    // wedged); the others, the follower's value.
    expect(wedged.errors().map((e) => e.name)).toEqual(['LeaseLostError']);
    expect(wedged.results().map((r) => r.value.by)).toEqual(['follower', 'follower']);
    expect(h.ledger.accepted(key).map((w) => w.by)).toEqual(['follower']);
    expect(h.ledger.refused(key)).toEqual([{ key, token: first.fencingToken, by: 'wedged' }]);
    recordFault({
      id: 'leader-event-loop-wedged',
      runs: 1,
      callers: 6,
      ...ledgerFigures(namespace),
      done: 1,
      settled: settled([wedged, follower]),
      worstSettleMs: settleMs,
    });
  });
});
