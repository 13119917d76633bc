/**
 * A leader or a follower whose network is black-holed (a partition that drops packets: nothing is
 * refused, nothing answers), between a worker process and a real redis-server (test/helpers/proxy.ts),
 * with every fn writing to the fencing ledger. Each test records what it measured for
 * docs/RELIABILITY.md.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/gate.js';
import { canInjectFaults } from '../helpers/redis-server.js';
import { recordFault } from '../helpers/reliability.js';
import { Worker } from '../helpers/worker.js';
import { faultHarness, KEY } from './harness.js';

const LEASE_MS = 1000;
const REDIS_TIMEOUT_MS = 1000;

const h = faultHarness('network-faults', { leaseMs: LEASE_MS, redisTimeoutMs: REDIS_TIMEOUT_MS });
const { config, ledgerFigures } = h;

describe.skipIf(!canInjectFaults)('a black-holed network', () => {
  it("aborts a cut-off leader's signal before its lease can expire; a follower takes over; the stale write is refused", async () => {
    const namespace = `bh-leader-${randomUUID()}`;
    const link = await h.proxy();
    // fn ignores its signal and writes the ledger after 2.5 s: by then, stale.
    const cutOff = await Worker.start(config(namespace, 'cut-off', { url: link.url, fnMs: 2500 }));
    const follower = await Worker.start(config(namespace, 'follower'));
    cutOff.go();
    const first = await cutOff.next((e) => e.type === 'fn-start');
    follower.go();
    link.set({ kind: 'blackhole' });
    const faultAt = performance.now();
    await follower.finished();
    await cutOff.finished();
    const settleMs = Math.max(follower.lastSettledAt()!, cutOff.lastSettledAt()!) - faultAt;
    const key = `${namespace}:${KEY}`;
    await cutOff.next((e) => e.type === 'ledger');

    if (first.type !== 'fn-start') throw new Error('unreachable');
    // Its signal aborted (renewals unanswered) before anyone else could start.
    const abortedAt = cutOff.events.findIndex((e) => e.type === 'fn-aborted');
    expect(cutOff.events[abortedAt]).toEqual({
      type: 'fn-aborted',
      nodeId: 'cut-off',
      reason: 'LeaseLostError',
    });
    const takeoverAt = follower.events.findIndex((e) => e.type === 'fn-start');
    expect(cutOff.arrivedAt[abortedAt]!).toBeLessThan(follower.arrivedAt[takeoverAt]!);
    const takeover = follower.fnStarts()[0]!;
    expect(takeover).toMatchObject({ attempt: 2, previous: { outcome: 'crashed', owner: 'cut-off' } });
    expect(takeover.fencingToken).toBeGreaterThan(first.fencingToken);
    expect(follower.results().map((r) => r.value.by)).toEqual(['follower', 'follower', 'follower']);
    // The cut-off process's callers: its fn's caller lost the lease, the others could not reach Redis.
    expect(
      cutOff
        .errors()
        .map((e) => e.name)
        .sort(),
    ).toEqual(['LeaseLostError', 'RedisUnavailableError', 'RedisUnavailableError']);
    expect(h.ledger.accepted(key).map((w) => w.by)).toEqual(['follower']);
    expect(h.ledger.refused(key)).toEqual([{ key, token: first.fencingToken, by: 'cut-off' }]);
    recordFault({
      id: 'leader-blackholed',
      runs: 1,
      callers: 6,
      ...ledgerFigures(namespace),
      done: 1,
      settled: cutOff.results().length + cutOff.errors().length + follower.results().length,
      worstSettleMs: settleMs,
    });
  });

  it('settles a cut-off follower with RedisUnavailableError within its bound, never a wrong value', async () => {
    const namespace = `bh-follower-${randomUUID()}`;
    const link = await h.proxy();
    const leader = await Worker.start(config(namespace, 'leader', { fnMs: 4000 }));
    const cutOff = await Worker.start(config(namespace, 'cut-off', { url: link.url }));
    leader.go();
    await leader.next((e) => e.type === 'fn-start');
    cutOff.go();
    // Subscribed and waiting (its read came back: the leader is at work) before the link goes dark.
    const admin = h.redis.client();
    await waitFor(async () => Number((await admin.pubsub('NUMSUB', `${namespace}:{${KEY}}:done`))[1]) === 1, {
      what: 'the follower to subscribe',
    });
    link.set({ kind: 'blackhole' });
    const faultAt = performance.now();
    await cutOff.finished(15_000);
    // Its callers settled before its close() ended (which gives back and quits over the dead link).
    const settleMs = cutOff.lastSettledAt()! - faultAt;
    await leader.finished();

    expect(cutOff.fnStarts()).toEqual([]);
    expect(cutOff.results()).toEqual([]);
    expect(cutOff.errors().map((e) => e.name)).toEqual(Array(3).fill('RedisUnavailableError'));
    // Bound: it wakes at the lease deadline it read (or finds its subscription silent), and its next
    // request gets redisTimeoutMs.
    expect(settleMs).toBeLessThan(LEASE_MS + 2 * REDIS_TIMEOUT_MS + 1000);
    expect(leader.results().map((r) => r.value.by)).toEqual(['leader', 'leader', 'leader']);
    recordFault({
      id: 'follower-blackholed',
      runs: 1,
      callers: 6,
      ...ledgerFigures(namespace),
      done: 1,
      settled: cutOff.errors().length + leader.results().length,
      worstSettleMs: settleMs,
    });
  });
});
