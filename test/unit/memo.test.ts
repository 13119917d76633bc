/**
 * The memo: one flight per key per process, and the values of done keys until they expire, are
 * evicted, or a reset may have happened unheard. performance.now() is fake, so expiry is exact.
 *
 * The epoch rule: a value is remembered only if the control channel (where resets are announced)
 * listened for the whole flight, from the flight's `observe()` to its `remember()`.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Flight } from '../../src/flight.js';
import { Memo } from '../../src/memo.js';

const FOREVER = Number.POSITIVE_INFINITY;

/** A memo whose control channel listens, as it does once Redis confirmed the subscription. */
function listening(maxKeys = 100): Memo<string> {
  const memo = new Memo<string>(maxKeys);
  memo.regain();
  return memo;
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
});

afterEach(() => {
  vi.useRealTimers();
});

describe('Memo: done values', () => {
  it('answers a remembered value until its expiry, and nothing from then on', () => {
    const memo = listening();
    memo.remember('k', 'v', performance.now() + 1000, memo.observe());
    expect(memo.get('k')).toBe('v');
    vi.advanceTimersByTime(999);
    expect(memo.get('k')).toBe('v');
    vi.advanceTimersByTime(1);
    expect(memo.get('k')).toBeUndefined();
    expect(memo.size).toBe(0);
  });

  it('keeps a value without expiry until something forgets it', () => {
    const memo = listening();
    memo.remember('k', 'v', FOREVER, memo.observe());
    vi.advanceTimersByTime(365 * 24 * 3600 * 1000);
    expect(memo.get('k')).toBe('v');
  });

  it('does not remember a value that has already expired', () => {
    const memo = listening();
    vi.advanceTimersByTime(5000);
    memo.remember('k', 'v', performance.now(), memo.observe());
    memo.remember('j', 'v', performance.now() - 1, memo.observe());
    expect(memo.size).toBe(0);
  });

  it('answers nothing for a key it never remembered', () => {
    expect(listening().get('never')).toBeUndefined();
  });

  it('replaces a key’s value and expiry when it is remembered again', () => {
    const memo = listening();
    memo.remember('k', 'old', performance.now() + 100, memo.observe());
    memo.remember('k', 'new', performance.now() + 1000, memo.observe());
    vi.advanceTimersByTime(500);
    expect(memo.get('k')).toBe('new');
    expect(memo.size).toBe(1);
  });
});

describe('Memo: eviction', () => {
  it('evicts the oldest values past maxKeys', () => {
    const memo = listening(2);
    for (const key of ['a', 'b', 'c']) memo.remember(key, key, FOREVER, memo.observe());
    expect(memo.get('a')).toBeUndefined();
    expect(memo.get('b')).toBe('b');
    expect(memo.get('c')).toBe('c');
    expect(memo.size).toBe(2);
  });

  it('counts a value remembered again as the newest', () => {
    const memo = listening(2);
    for (const key of ['a', 'b', 'a', 'c']) memo.remember(key, key, FOREVER, memo.observe());
    expect(memo.get('a')).toBe('a');
    expect(memo.get('b')).toBeUndefined();
    expect(memo.get('c')).toBe('c');
  });

  it('keeps nothing with maxKeys 0', () => {
    const memo = listening(0);
    memo.remember('k', 'v', FOREVER, memo.observe());
    expect(memo.get('k')).toBeUndefined();
    expect(memo.size).toBe(0);
  });
});

describe('Memo: the epoch rule', () => {
  it('observes -1 while the control channel is not listening, and never remembers from it', () => {
    const memo = new Memo<string>(10);
    expect(memo.observe()).toBe(-1);
    memo.remember('k', 'v', FOREVER, memo.observe());
    expect(memo.get('k')).toBeUndefined();
  });

  it('refuses a flight that observed nothing (observedAt -1)', () => {
    const memo = listening();
    memo.remember('k', 'v', FOREVER, -1);
    expect(memo.get('k')).toBeUndefined();
  });

  it('refuses a value while the control channel is not listening (before regain())', () => {
    const memo = new Memo<string>(10);
    // The current epoch, but nobody listens for resets: one could go unheard.
    memo.remember('k', 'v', FOREVER, 0);
    expect(memo.get('k')).toBeUndefined();
  });

  it('refuses a flight that observed before the control channel dropped, even once it listens again', () => {
    const memo = listening();
    const observedAt = memo.observe();
    memo.lose();
    memo.regain();
    memo.remember('k', 'v', FOREVER, observedAt);
    expect(memo.get('k')).toBeUndefined();

    // A flight that observes after regain() is remembered.
    memo.remember('k', 'v', FOREVER, memo.observe());
    expect(memo.get('k')).toBe('v');
  });

  it('refuses a flight that observed from an epoch the memo never had', () => {
    const memo = listening();
    memo.remember('k', 'v', FOREVER, memo.observe() + 1);
    expect(memo.get('k')).toBeUndefined();
  });

  it('forgets every value when the control channel drops, and observes -1 until regain()', () => {
    const memo = listening();
    for (const key of ['a', 'b']) memo.remember(key, key, FOREVER, memo.observe());
    memo.lose();
    expect(memo.size).toBe(0);
    expect(memo.get('a')).toBeUndefined();
    expect(memo.observe()).toBe(-1);
    memo.regain();
    expect(memo.observe()).toBeGreaterThanOrEqual(0);
  });
});

describe('Memo: a reset announced for one key', () => {
  it('drops that key’s value and no other', () => {
    const memo = listening();
    for (const key of ['a', 'b']) memo.remember(key, key, FOREVER, memo.observe());
    memo.forget('a');
    expect(memo.get('a')).toBeUndefined();
    expect(memo.get('b')).toBe('b');
  });

  it('lets no flight in progress remember what it learned before the reset, even one no longer in the map', () => {
    // A flight every caller left may still land after a newer flight of the key replaced it.
    const memo = listening();
    const left = memo.observe();
    const other = memo.observe();
    memo.forget('a');
    memo.remember('a', 'stale', FOREVER, left);
    memo.remember('b', 'learned before the reset too', FOREVER, other);
    expect(memo.get('a')).toBeUndefined();
    expect(memo.get('b')).toBeUndefined();
    // A flight that observes after the reset is remembered.
    memo.remember('a', 'fresh', FOREVER, memo.observe());
    expect(memo.get('a')).toBe('fresh');
  });

  it('forgets a key with nothing remembered and no flight without complaint', () => {
    const memo = listening();
    expect(() => memo.forget('nothing')).not.toThrow();
  });
});

describe('Memo: flights', () => {
  it('tracks one flight per key', () => {
    const memo = listening();
    const a = new Flight('a');
    const b = new Flight('b');
    memo.add(a);
    memo.add(b);
    expect(memo.flight('a')).toBe(a);
    expect(memo.flight('b')).toBe(b);
    expect(memo.flight('c')).toBeUndefined();
    expect(memo.inFlight()).toEqual([a, b]);
  });

  it('drops only the exact flight it is given, never a newer flight of the key', () => {
    const memo = listening();
    const old = new Flight('k');
    const newer = new Flight('k');
    memo.add(old);
    memo.add(newer);
    memo.drop(old);
    expect(memo.flight('k')).toBe(newer);
    memo.drop(new Flight('k'));
    expect(memo.flight('k')).toBe(newer);
    memo.drop(newer);
    expect(memo.flight('k')).toBeUndefined();
    expect(memo.inFlight()).toEqual([]);
  });

  it('keeps flights in progress when the control channel drops (they are not values)', () => {
    const memo = listening();
    const flight = new Flight('k');
    memo.add(flight);
    memo.lose();
    expect(memo.flight('k')).toBe(flight);
  });
});
