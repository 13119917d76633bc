/**
 * The lease, as its leader's process sees it: timers only. Time is fake (setTimeout and
 * performance.now), and every renewal is a gate the test answers, so each case says exactly when a
 * renewal goes out, what its answer proves, and when fn's signal aborts.
 *
 * With leaseMs 3000: drift = 32 ms, guard = 300 ms, so from a claim sent at t the lease is valid until
 * t + 2968, fn hears of a loss at abortAt = t + 2668, and Redis expires it at t + 3000 at the latest.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LeaseLostError } from '../../src/errors.js';
import { Lease, leaseTiming, type RenewOutcome } from '../../src/lease.js';
import { endCell, newCell, prove, provenSentAt, REFUSED, STOPPED, stateOf } from '../../src/renewer/cell.js';
import { type Gate, gate } from '../helpers/gate.js';

const LEASE_MS = 3000;
const DRIFT = 32;
const GUARD = 300;

interface Renewal {
  /** performance.now() when it was sent. */
  at: number;
  withinMs: number;
  answer: Gate<RenewOutcome>;
}

/** A lease whose renewals wait on gates; `renewals[i]` is the i-th one sent. */
function lease(options: { sentAt?: number; renew?: (withinMs: number) => Promise<RenewOutcome> } = {}) {
  const renewals: Renewal[] = [];
  const renew = vi.fn(
    options.renew ??
      ((withinMs: number) => {
        const answer = gate<RenewOutcome>();
        renewals.push({ at: performance.now(), withinMs, answer });
        return answer.promise;
      }),
  );
  const l = new Lease({
    key: 'migrate:v42',
    leaseMs: LEASE_MS,
    sentAt: options.sentAt ?? performance.now(),
    repliedAt: performance.now(),
    renew,
  });
  return { lease: l, renew, renewals };
}

/** Lets the lease's promise callbacks run (setImmediate is not faked). */
function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Answers renewal `r` and lets the lease act on the answer. */
async function answer(r: Renewal | undefined, outcome: RenewOutcome): Promise<void> {
  if (!r) throw new Error('no such renewal was sent');
  r.answer.open(outcome);
  await flush();
}

/** Moves fake time to `at` (a performance.now() instant), firing the timers due on the way. */
function advanceTo(at: number): void {
  vi.advanceTimersByTime(at - performance.now());
}

let t0 = 0;

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
  t0 = performance.now();
});

afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
});

describe('leaseTiming', () => {
  for (const { leaseMs, driftMs, guardMs, why } of [
    { leaseMs: 100, driftMs: 3, guardMs: 10, why: 'the smallest lease accepted' },
    { leaseMs: 3000, driftMs: 32, guardMs: 300, why: 'drift is 1% + 2 ms, guard a tenth' },
    { leaseMs: 30_000, driftMs: 302, guardMs: 3000, why: 'the default lease' },
    { leaseMs: 40, driftMs: 2, guardMs: 5, why: 'the guard is at least 5 ms' },
  ]) {
    it(`gives a ${leaseMs} ms lease ${driftMs} ms of drift and a ${guardMs} ms guard (${why})`, () => {
      expect(leaseTiming(leaseMs)).toEqual({ leaseMs, driftMs, guardMs });
    });
  }
});

describe('Lease', () => {
  it('measures validity from when the claim was sent, not from when it was answered', () => {
    const { lease: l } = lease({ sentAt: t0 - 200 });
    expect(l.abortAt).toBe(t0 - 200 + LEASE_MS - DRIFT - GUARD);
    // Redis set the lease somewhere between the claim's send and its reply: it expires by the reply
    // time + the lease, allowing for drift.
    expect(l.expiresAt).toBe(t0 + LEASE_MS + DRIFT);
    expect(l.isValid()).toBe(true);
  });

  it('sends the first renewal at a third of the lease, bounded by half the time left before abortAt', () => {
    const { lease: l, renewals } = lease();
    l.start();
    advanceTo(t0 + 999);
    expect(renewals).toHaveLength(0);
    advanceTo(t0 + 1000);
    expect(renewals).toHaveLength(1);
    // Half: if it is never answered, a second try still has the other half.
    expect(renewals[0]?.withinMs).toBe((l.abortAt - (t0 + 1000)) / 2);
    l.stop();
  });

  it('counts the third from the claim’s send time, so a slow claim renews sooner', () => {
    const { lease: l, renewals } = lease({ sentAt: t0 - 400 });
    l.start();
    advanceTo(t0 + 599);
    expect(renewals).toHaveLength(0);
    advanceTo(t0 + 600);
    expect(renewals).toHaveLength(1);
    l.stop();
  });

  it('on "renewed", moves validity to the renewal’s send time + lease − drift, and renews a third later', async () => {
    const { lease: l, renewals } = lease();
    l.start();
    advanceTo(t0 + 1000);
    advanceTo(t0 + 1050); // the answer takes 50 ms: they count against us
    await answer(renewals[0], 'renewed');
    expect(l.abortAt).toBe(t0 + 1000 + LEASE_MS - DRIFT - GUARD);
    expect(l.expiresAt).toBe(t0 + 1050 + LEASE_MS + DRIFT);

    advanceTo(t0 + 1999);
    expect(renewals).toHaveLength(1);
    advanceTo(t0 + 2000);
    expect(renewals).toHaveLength(2);
    expect(renewals[1]?.withinMs).toBe((l.abortAt - (t0 + 2000)) / 2);

    // The first deadline (t0 + 2668) no longer applies.
    advanceTo(t0 + 2700);
    expect(l.signal.aborted).toBe(false);
    expect(l.isValid()).toBe(true);
    l.stop();
  });

  it('keeps a lease alive for as long as every renewal is proven', async () => {
    const { lease: l, renewals } = lease();
    l.start();
    for (let i = 1; i <= 30; i++) {
      advanceTo(t0 + 1000 * i);
      await answer(renewals[i - 1], 'renewed');
    }
    expect(renewals).toHaveLength(30);
    expect(l.signal.aborted).toBe(false);
    expect(l.abortAt).toBe(t0 + 30_000 + LEASE_MS - DRIFT - GUARD);
    l.stop();
  });

  it('on an "unanswered" that came fast (a connection being re-established), tries again 100 ms later', async () => {
    const { lease: l, renewals } = lease();
    l.start();
    advanceTo(t0 + 1000);
    await answer(renewals[0], 'unanswered');
    advanceTo(t0 + 1099);
    expect(renewals).toHaveLength(1);
    advanceTo(t0 + 1100);
    expect(renewals).toHaveLength(2);
    expect(renewals[1]?.withinMs).toBe((l.abortAt - (t0 + 1100)) / 2);

    // The second chance works: the lease is extended from its send time.
    await answer(renewals[1], 'renewed');
    expect(l.abortAt).toBe(t0 + 1100 + LEASE_MS - DRIFT - GUARD);
    expect(l.signal.aborted).toBe(false);
    l.stop();
  });

  it('sends the second renewal by halfway to abortAt even when the first one hangs until its bound', async () => {
    // A store renewal answers within `withinMs` (the real ones time out then, with "unanswered").
    // DESIGN: renewal starts at a third "to have two chances before expiry"; a black-holed Redis
    // must not use up both chances with one request.
    const sent: number[] = [];
    const { lease: l } = lease({
      renew: (withinMs) => {
        sent.push(performance.now());
        return new Promise((resolve) => setTimeout(() => resolve('unanswered'), withinMs));
      },
    });
    l.start();
    const halfway = t0 + 1000 + (l.abortAt - (t0 + 1000)) / 2;
    await vi.advanceTimersByTimeAsync(halfway - performance.now());
    await flush();
    expect(sent).toHaveLength(2);
    expect(sent[0]).toBe(t0 + 1000);
    expect(sent[1]).toBeLessThanOrEqual(halfway);
    l.stop();
  });

  it('aborts the signal with LeaseLostError at abortAt, while the lease is still ours in Redis', () => {
    const { lease: l } = lease();
    l.start();
    advanceTo(l.abortAt - 1);
    expect(l.signal.aborted).toBe(false);
    expect(l.isValid()).toBe(true);

    advanceTo(l.abortAt);
    expect(l.signal.aborted).toBe(true);
    expect(l.signal.reason).toBeInstanceOf(LeaseLostError);
    expect(l.signal.reason).toMatchObject({
      name: 'LeaseLostError',
      code: 'ONCE_LEASE_LOST',
      key: 'migrate:v42',
    });
    expect((l.signal.reason as Error).message).toMatch(/could not renew the lease of "migrate:v42" in time/);
    expect(l.isValid()).toBe(false);
    // fn hears of it a guard plus the drift before Redis could let anyone else take over.
    expect(l.expiresAt - performance.now()).toBe(GUARD + 2 * DRIFT);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('still aborts when its timer fires a fraction of a millisecond early by performance.now()', () => {
    // Node's timers run on a millisecond loop clock; performance.now() may lag it by a fraction. A
    // lease that only looked once would then never abort.
    const { lease: l, renewals } = lease();
    l.start();
    advanceTo(t0 + 1000);
    expect(renewals).toHaveLength(1); // sent, and never answered: only the abort timer is left
    const now = performance.now.bind(performance);
    const early = vi.spyOn(performance, 'now').mockImplementation(() => now() - 0.6);
    vi.advanceTimersToNextTimer();
    expect(l.signal.aborted).toBe(false); // looked 0.6 ms early…
    early.mockRestore();
    vi.advanceTimersToNextTimer();
    expect(l.signal.aborted).toBe(true); // …and looked again
    expect(l.signal.reason).toBeInstanceOf(LeaseLostError);
  });

  it('aborts at once on "refused": the lease is someone else’s now', async () => {
    const { lease: l, renewals } = lease();
    l.start();
    advanceTo(t0 + 1000);
    await answer(renewals[0], 'refused');
    expect(l.signal.aborted).toBe(true);
    expect(l.signal.reason).toBeInstanceOf(LeaseLostError);
    expect((l.signal.reason as Error).name).toBe('LeaseLostError');
    expect((l.signal.reason as Error).message).toMatch(/is not ours any more/);
    expect(performance.now()).toBe(t0 + 1000);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('takes a renewal answered after abortAt as proof of nothing: aborted, not extended', async () => {
    const { lease: l, renewals } = lease();
    l.start();
    advanceTo(t0 + 1000);
    const abortAt = l.abortAt;
    advanceTo(abortAt + 10);
    expect(l.signal.aborted).toBe(true);

    await answer(renewals[0], 'renewed');
    expect(l.abortAt).toBe(abortAt);
    expect(l.isValid()).toBe(false);
    expect(renewals).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('takes a late answer as proof of nothing even before its abort timer ran (a paused process)', async () => {
    const { lease: l, renewals } = lease();
    l.start();
    advanceTo(t0 + 1000);
    const abortAt = l.abortAt;
    // The process was paused: the clock is past abortAt, but no timer has fired yet.
    vi.spyOn(performance, 'now').mockReturnValue(abortAt + 50);

    await answer(renewals[0], 'renewed');
    expect(l.signal.aborted).toBe(true);
    expect(l.signal.reason).toBeInstanceOf(LeaseLostError);
    expect(l.abortAt).toBe(abortAt);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('ends every timer on stop(): no renewal is sent after it, and the signal never aborts', async () => {
    const { lease: l, renew } = lease();
    l.start();
    expect(vi.getTimerCount()).toBe(1); // the renewal: the abort timer comes with the first renewal
    l.stop();
    expect(vi.getTimerCount()).toBe(0);
    advanceTo(t0 + 10 * LEASE_MS);
    expect(renew).not.toHaveBeenCalled();
    expect(l.signal.aborted).toBe(false);
  });

  it('arms nothing when a renewal in flight at stop() comes back renewed', async () => {
    const { lease: l, renewals } = lease();
    l.start();
    advanceTo(t0 + 1000);
    l.stop();
    await answer(renewals[0], 'renewed');
    expect(vi.getTimerCount()).toBe(0);
    advanceTo(t0 + 10 * LEASE_MS);
    expect(renewals).toHaveLength(1);
    expect(l.signal.aborted).toBe(false);
  });

  it('aborts with the reason given to lose(), once', () => {
    const { lease: l, renew } = lease();
    l.start();
    const first = new Error('reset with force');
    const aborts = vi.fn();
    l.signal.addEventListener('abort', aborts);

    l.lose(first);
    l.lose(new Error('second'));
    expect(aborts).toHaveBeenCalledTimes(1);
    expect(l.signal.reason).toBe(first);
    expect(l.isValid()).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
    advanceTo(t0 + 10 * LEASE_MS);
    expect(renew).not.toHaveBeenCalled();
  });

  it('starts nothing once lost or stopped', () => {
    const lost = lease().lease;
    lost.lose(new Error('gone'));
    lost.start();
    const stopped = lease().lease;
    stopped.stop();
    stopped.start();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('is valid before start() only until abortAt (a claim that came back too late)', () => {
    const { lease: l } = lease({ sentAt: t0 - LEASE_MS });
    expect(l.isValid()).toBe(false);
    expect(lease({ sentAt: t0 }).lease.isValid()).toBe(true);
  });

  it('unrefs its timers, so a lease never keeps the process alive', () => {
    const unref = vi.fn();
    const { lease: l } = lease();
    const realSetTimeout = globalThis.setTimeout;
    vi.spyOn(globalThis, 'setTimeout').mockImplementation(((fn: () => void, ms?: number) => {
      const timer = realSetTimeout(fn, ms);
      const original = timer.unref.bind(timer);
      timer.unref = () => {
        unref();
        return original();
      };
      return timer;
    }) as typeof setTimeout);
    l.start();
    expect(unref).toHaveBeenCalledTimes(1);
    l.stop();
  });
});

describe('with a standby renewer (src/renewer)', () => {
  /** A standby as the renewer's thread would leave it: a cell it proves renewals in. */
  function standby(sentAt: number) {
    const cell = newCell(sentAt);
    const stop = vi.fn(() => endCell(cell, STOPPED));
    return { cell, stop };
  }

  it('counts validity from a renewal the standby proved: the abort does not come while this thread was stalled', async () => {
    const { lease: l, renewals } = lease();
    const s = standby(t0);
    l.start(() => s);
    const signal = l.signal;
    // This thread stalls through its own renewal time; the standby renews, sent at t0 + 1500.
    prove(s.cell, t0 + 1500);
    advanceTo(t0 + 2668 + 100);
    await flush();
    expect(signal.aborted).toBe(false);
    expect(l.isValid()).toBe(true);
    expect(l.abortAt).toBe(t0 + 1500 + 2668);
    // Its own renewal, sent before the standby's, is answered now: the later proof still counts.
    expect(renewals[0]!.at).toBe(t0 + 1000);
    await answer(renewals[0], 'renewed');
    expect(l.abortAt).toBe(t0 + 1500 + 2668);
    expect(provenSentAt(s.cell)).toBeCloseTo(t0 + 1500, 2);
    // Its next one (due at once: its schedule is its own proof's) raises the cell for the standby.
    vi.advanceTimersByTime(0);
    expect(renewals[1]!.at).toBe(t0 + 2768);
    await answer(renewals[1], 'renewed');
    expect(l.abortAt).toBe(renewals[1]!.at + 2668);
    expect(provenSentAt(s.cell)).toBeCloseTo(renewals[1]!.at, 2);
  });

  it('keeps what the standby proved once stopped, and reads its cell no more (another lease may take it)', () => {
    const { lease: l } = lease();
    const s = standby(t0);
    l.start(() => s);
    prove(s.cell, t0 + 1500);
    l.stop();
    expect(l.abortAt).toBe(t0 + 1500 + 2668);
    // The cell serves another lease now.
    prove(s.cell, t0 + 50_000);
    expect(l.abortAt).toBe(t0 + 1500 + 2668);
  });

  it('never counts a proof the cell holds from before its own (a cell only rises)', () => {
    const s = standby(t0 + 1000);
    prove(s.cell, t0 + 500);
    expect(provenSentAt(s.cell)).toBeCloseTo(t0 + 1000, 2);
  });

  it('a refusal the standby met is a loss here, at the next look', async () => {
    const { lease: l } = lease();
    const s = standby(t0);
    l.start(() => s);
    endCell(s.cell, REFUSED);
    l.refusedElsewhere();
    expect(l.isLost).toBe(true);
    expect(l.reason).toBeInstanceOf(LeaseLostError);
    expect((l.reason as Error).message).toMatch(/not ours any more/);
  });

  it('stopping the lease (fn settled) or losing it stops the standby for good', () => {
    const first = standby(t0);
    const a = lease().lease;
    a.start(() => first);
    a.stop();
    expect(first.stop).toHaveBeenCalledOnce();
    expect(stateOf(first.cell)).toBe(STOPPED);

    const second = standby(t0);
    const b = lease().lease;
    b.start(() => second);
    b.lose(new LeaseLostError('taken', { key: 'k' }));
    expect(second.stop).toHaveBeenCalled();
    expect(stateOf(second.cell)).toBe(STOPPED);
    // A cell ended once keeps its first ending.
    endCell(second.cell, REFUSED);
    expect(stateOf(second.cell)).toBe(STOPPED);
  });
});
