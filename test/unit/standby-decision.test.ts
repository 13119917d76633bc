/**
 * The standby renewer's rule (src/renewer/decision.ts), as a table: it renews for a leader whose thread
 * is stalled — not for one that is awake, nor one that is wedged — and never past trusting the lease.
 */
import { describe, expect, it } from 'vitest';
import { abortAtOf, type StandbyView, standbyMove } from '../../src/renewer/decision.js';

const LEASE = 3_000;
const base: StandbyView = {
  now: 0,
  provenSentAt: 0,
  lastBeat: 0,
  leaseMs: LEASE,
  stalledAfterMs: 750,
  maxStallMs: 60_000,
};

describe('standbyMove', () => {
  const cases: Array<{ what: string; view: Partial<StandbyView>; move: string }> = [
    { what: "the leader's own renewal is not due yet", view: { now: 900, lastBeat: 0 }, move: 'wait' },
    { what: 'due at a third, not yet overdue at half', view: { now: 1_400, lastBeat: 0 }, move: 'wait' },
    {
      what: 'overdue, and the leader has been stalled since the claim',
      view: { now: 1_500, lastBeat: 0 },
      move: 'renew',
    },
    {
      what: 'overdue, but the leader is awake (it beats): its own timers decide',
      view: { now: 1_500, lastBeat: 1_400 },
      move: 'wait',
    },
    { what: 'overdue, stalled just under the threshold', view: { now: 1_500, lastBeat: 751 }, move: 'wait' },
    {
      what: 'overdue, stalled exactly maxStallMs',
      view: { now: 2_000, lastBeat: 2_000 - 60_000, provenSentAt: 0 },
      move: 'renew',
    },
    {
      what: 'stalled past maxStallMs: wedged, not renewed',
      view: { now: 2_000, lastBeat: 2_000 - 60_001 },
      move: 'wait',
    },
    {
      what: 'at the abort instant: past trusting',
      view: { now: abortAtOf(0, LEASE), lastBeat: 0 },
      move: 'drop',
    },
    {
      what: 'a renewal proven later moves everything on',
      view: { now: 2_000, provenSentAt: 1_000, lastBeat: 0 },
      move: 'wait',
    },
  ];
  it.each(cases)('$what → $move', ({ view, move }) => {
    expect(standbyMove({ ...base, ...view }).kind).toBe(move);
  });

  it('waits for a reply at most half the time left before the abort instant', () => {
    const move = standbyMove({ ...base, now: 1_500 });
    expect(move).toEqual({ kind: 'renew', withinMs: (abortAtOf(0, LEASE) - 1_500) / 2 });
  });

  it('the abort instant is the leader’s own (lease.ts): TTL − drift − guard', () => {
    // drift = 1% + 2 ms, guard = a tenth of the lease.
    expect(abortAtOf(1_000, LEASE)).toBe(1_000 + LEASE - 32 - 300);
  });
});
