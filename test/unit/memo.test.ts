/**
 * The local memo: one flight per key per process, successes remembered (until their TTL, a forget, or
 * eviction), failures never. Flights are driven by gates, so every overlap is forced, not hoped for.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Flight, Memo } from '../../src/memo.js';
import { type Gate, gate } from '../helpers/gate.js';

interface Result {
  value: string;
  ttlMs: number;
}

/**
 * A start function whose flights each wait on their own gate; `starts` counts the flights begun and
 * `gates[i]` settles the i-th one (resolve with a Result, or reject with an Error).
 */
function stubStart() {
  const gates: Gate<Result | Error>[] = [];
  const signals: AbortSignal[] = [];
  const start = vi.fn(async (stop: AbortSignal, _flight: Flight<Result>): Promise<Result> => {
    const g = gate<Result | Error>();
    gates.push(g);
    signals.push(stop);
    const outcome = await g.promise;
    if (outcome instanceof Error) throw outcome;
    return outcome;
  });
  return { start, gates, signals };
}

const ttlOf = (result: Result) => result.ttlMs;
const forever = (value: string): Result => ({ value, ttlMs: Number.POSITIVE_INFINITY });

/** Lets every promise callback already queued run (the memo's own `then` runs before ours). */
async function settled(flight: Flight<Result>): Promise<void> {
  await flight.promise.catch(() => {});
}

afterEach(() => {
  vi.useRealTimers();
});

describe('Memo', () => {
  it('shares one flight between concurrent joins of a key', async () => {
    const memo = new Memo<Result>(10);
    const { start, gates } = stubStart();
    const first = memo.join('k', start, ttlOf);
    const second = memo.join('k', start, ttlOf);
    const third = memo.join('k', start, ttlOf);
    expect(second).toBe(first);
    expect(third).toBe(first);
    expect(start).toHaveBeenCalledTimes(1);
    gates[0]!.open(forever('v'));
    expect(await Promise.all([first.promise, second.promise, third.promise])).toEqual([
      forever('v'),
      forever('v'),
      forever('v'),
    ]);
  });

  it('runs separate flights for separate keys', () => {
    const memo = new Memo<Result>(10);
    const { start } = stubStart();
    expect(memo.join('a', start, ttlOf)).not.toBe(memo.join('b', start, ttlOf));
    expect(start).toHaveBeenCalledTimes(2);
  });

  it('hands start its stop signal and the flight itself', () => {
    const memo = new Memo<Result>(10);
    const { start, signals } = stubStart();
    const flight = memo.join('k', start, ttlOf);
    expect(start).toHaveBeenCalledWith(signals[0], flight);
    expect(signals[0]!.aborted).toBe(false);
  });

  it('remembers a success: get answers it, and a later join starts no flight', async () => {
    const memo = new Memo<Result>(10);
    const { start, gates } = stubStart();
    expect(memo.get('k')).toBeUndefined();
    const flight = memo.join('k', start, ttlOf);
    expect(memo.get('k')).toBeUndefined(); // not while in flight
    gates[0]!.open(forever('v'));
    await settled(flight);
    expect(memo.get('k')).toEqual(forever('v'));
    expect(memo.size).toBe(1);
  });

  it('never remembers a failure: the next join starts a new flight', async () => {
    const memo = new Memo<Result>(10);
    const { start, gates } = stubStart();
    const failing = memo.join('k', start, ttlOf);
    gates[0]!.open(new Error('boom'));
    await expect(failing.promise).rejects.toThrow('boom');
    expect(memo.get('k')).toBeUndefined();
    expect(memo.size).toBe(0);

    const retry = memo.join('k', start, ttlOf);
    expect(retry).not.toBe(failing);
    expect(start).toHaveBeenCalledTimes(2);
    gates[1]!.open(forever('second'));
    await settled(retry);
    expect(memo.get('k')?.value).toBe('second');
  });

  it('does not remember a result whose TTL is zero', async () => {
    const memo = new Memo<Result>(10);
    const { start, gates } = stubStart();
    const flight = memo.join('k', start, ttlOf);
    gates[0]!.open({ value: 'v', ttlMs: 0 });
    await settled(flight);
    expect(memo.get('k')).toBeUndefined();
  });

  it('forgets a remembered result once its TTL has passed, and not before', async () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    const memo = new Memo<Result>(10);
    const { start, gates } = stubStart();
    const flight = memo.join('k', start, ttlOf);
    gates[0]!.open({ value: 'v', ttlMs: 50 });
    await settled(flight);
    vi.advanceTimersByTime(49);
    expect(memo.get('k')?.value).toBe('v');
    vi.advanceTimersByTime(1);
    expect(memo.get('k')).toBeUndefined();
    expect(memo.size).toBe(0);
    // Gone for good: a later join flies again.
    memo.join('k', start, ttlOf);
    expect(start).toHaveBeenCalledTimes(2);
  });

  it('keeps a result without a TTL however much time passes', async () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    const memo = new Memo<Result>(10);
    const { start, gates } = stubStart();
    const flight = memo.join('k', start, ttlOf);
    gates[0]!.open(forever('v'));
    await settled(flight);
    vi.advanceTimersByTime(365 * 24 * 3600 * 1000);
    expect(memo.get('k')?.value).toBe('v');
  });

  it('evicts the oldest remembered key once more than maxKeys are kept', async () => {
    const memo = new Memo<Result>(2);
    const { start, gates } = stubStart();
    for (const [i, key] of ['a', 'b', 'c'].entries()) {
      const flight = memo.join(key, start, ttlOf);
      gates[i]!.open(forever(key));
      await settled(flight);
    }
    expect(memo.size).toBe(2);
    expect(memo.get('a')).toBeUndefined();
    expect(memo.get('b')?.value).toBe('b');
    expect(memo.get('c')?.value).toBe('c');
  });

  it('counts age from when a key was last remembered, so a re-remembered key is the newest', async () => {
    const memo = new Memo<Result>(2);
    const { start, gates } = stubStart();
    const remember = async (key: string) => {
      const flight = memo.join(key, start, ttlOf);
      gates.at(-1)!.open(forever(key));
      await settled(flight);
    };
    await remember('a');
    await remember('b');
    memo.forget('a');
    await remember('a'); // now newer than b
    await remember('c');
    expect(memo.get('b')).toBeUndefined();
    expect(memo.get('a')?.value).toBe('a');
    expect(memo.get('c')?.value).toBe('c');
  });

  it('remembers nothing with maxKeys 0', async () => {
    const memo = new Memo<Result>(0);
    const { start, gates } = stubStart();
    const flight = memo.join('k', start, ttlOf);
    gates[0]!.open(forever('v'));
    await settled(flight);
    expect(memo.get('k')).toBeUndefined();
    expect(memo.size).toBe(0);
  });

  it('forget drops a remembered result', async () => {
    const memo = new Memo<Result>(10);
    const { start, gates } = stubStart();
    const flight = memo.join('k', start, ttlOf);
    gates[0]!.open(forever('v'));
    await settled(flight);
    memo.forget('k');
    expect(memo.get('k')).toBeUndefined();
  });

  it('after a forget during a flight, that flight is not remembered and a new join flies anew', async () => {
    const memo = new Memo<Result>(10);
    const { start, gates } = stubStart();
    const before = memo.join('k', start, ttlOf);
    memo.forget('k'); // a reset happened while it was in flight
    const after = memo.join('k', start, ttlOf);
    expect(after).not.toBe(before);
    expect(start).toHaveBeenCalledTimes(2);

    gates[0]!.open(forever('stale'));
    await settled(before);
    expect(memo.get('k')).toBeUndefined();
    // The newer flight is still the one joined.
    expect(memo.join('k', start, ttlOf)).toBe(after);
    expect(start).toHaveBeenCalledTimes(2);

    gates[1]!.open(forever('fresh'));
    await settled(after);
    expect(memo.get('k')?.value).toBe('fresh');
  });

  it('a flight forgotten and then failing does not remove the newer flight', async () => {
    const memo = new Memo<Result>(10);
    const { start, gates } = stubStart();
    const before = memo.join('k', start, ttlOf);
    memo.forget('k');
    const after = memo.join('k', start, ttlOf);
    gates[0]!.open(new Error('old attempt failed'));
    await settled(before);
    expect(memo.join('k', start, ttlOf)).toBe(after);
    expect(start).toHaveBeenCalledTimes(2);
  });

  it('a forget with no new join leaves nothing remembered once the flight lands', async () => {
    const memo = new Memo<Result>(10);
    const { start, gates } = stubStart();
    const flight = memo.join('k', start, ttlOf);
    memo.forget('k');
    gates[0]!.open(forever('v'));
    await expect(flight.promise).resolves.toEqual(forever('v')); // its callers still get their value
    expect(memo.get('k')).toBeUndefined();
  });

  it('clear stops every flight with the reason, and forgets everything', async () => {
    const memo = new Memo<Result>(10);
    const { start, gates, signals } = stubStart();
    const done = memo.join('done', start, ttlOf);
    gates[0]!.open(forever('v'));
    await settled(done);
    memo.join('a', start, ttlOf);
    memo.join('b', start, ttlOf);
    const reason = new Error('closed');
    memo.clear(reason);
    expect(signals[1]!.aborted).toBe(true);
    expect(signals[1]!.reason).toBe(reason);
    expect(signals[2]!.reason).toBe(reason);
    expect(memo.get('done')).toBeUndefined();
    expect(memo.size).toBe(0);
    memo.join('a', start, ttlOf);
    expect(start).toHaveBeenCalledTimes(4);
  });
});

describe('Flight', () => {
  it('keeps running while one caller remains attached', () => {
    const { start, signals } = stubStart();
    const flight = new Flight<Result>(start);
    const detachA = flight.attach();
    flight.attach();
    detachA();
    expect(signals[0]!.aborted).toBe(false);
  });

  it('aborts its stop signal when the last caller detaches', () => {
    const { start, signals } = stubStart();
    const flight = new Flight<Result>(start);
    const detachA = flight.attach();
    const detachB = flight.attach();
    detachA();
    detachB();
    expect(signals[0]!.aborted).toBe(true);
    expect(String(signals[0]!.reason)).toMatch(/every caller stopped waiting/);
  });

  it('counts a caller out once, however often its detach is called', () => {
    const { start, signals } = stubStart();
    const flight = new Flight<Result>(start);
    const detachA = flight.attach();
    const detachB = flight.attach();
    detachA();
    detachA();
    detachA();
    expect(signals[0]!.aborted).toBe(false);
    detachB();
    expect(signals[0]!.aborted).toBe(true);
  });

  it('does not abort once it has settled, even when every caller then detaches', async () => {
    const { start, gates, signals } = stubStart();
    const flight = new Flight<Result>(start);
    const detach = flight.attach();
    gates[0]!.open(forever('v'));
    await flight.promise;
    detach();
    expect(signals[0]!.aborted).toBe(false);
  });

  it('a caller attaching after another left keeps a not-yet-aborted flight alive', () => {
    const { start, signals } = stubStart();
    const flight = new Flight<Result>(start);
    const detachA = flight.attach();
    const detachB = flight.attach();
    detachA();
    const detachC = flight.attach();
    detachB();
    expect(signals[0]!.aborted).toBe(false);
    detachC();
    expect(signals[0]!.aborted).toBe(true);
  });

  it('stop aborts once, with the first reason', () => {
    const { start, signals } = stubStart();
    const flight = new Flight<Result>(start);
    const first = new Error('first');
    flight.stop(first);
    flight.stop(new Error('second'));
    expect(signals[0]!.reason).toBe(first);
  });

  it('tells leading listeners once it leads, and late listeners at once', () => {
    const { start } = stubStart();
    const flight = new Flight<Result>(start);
    const early = vi.fn();
    flight.onLeading(early);
    expect(flight.leading).toBe(false);
    expect(early).not.toHaveBeenCalled();
    flight.markLeading();
    expect(flight.leading).toBe(true);
    expect(early).toHaveBeenCalledTimes(1);
    const late = vi.fn();
    flight.onLeading(late);
    expect(late).toHaveBeenCalledTimes(1);
    flight.markLeading();
    expect(early).toHaveBeenCalledTimes(1);
  });
});
