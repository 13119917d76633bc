/**
 * One flight's callers: they share one coordination, one timer serves all their deadlines, and each
 * caller's own timeout and signal end only its own wait. Time is fake (setTimeout, performance.now);
 * the flight is driven by hand, as the coordinator drives it.
 */
import { getEventListeners } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { OnceAbortError, OnceClosedError, OnceTimeoutError } from '../../src/errors.js';
import { type CallerInit, type CallSettings, Flight, type OnceFn, type RunResult } from '../../src/flight.js';

const KEY = 'migrate:v42';
const SETTINGS: CallSettings = { leaseMs: 3000, maxAttempts: 3, doneTtlMs: undefined };
const DONE = { value: { applied: 12 }, fencingToken: 7, attempt: 2 };

/** A caller's promise, watched: `outcome()` tells how it settled so far. */
interface Watched {
  promise: Promise<unknown>;
  outcome():
    | { state: 'pending' }
    | { state: 'resolved'; value: unknown }
    | { state: 'rejected'; error: unknown };
}

function watch(promise: Promise<unknown>): Watched {
  let outcome: ReturnType<Watched['outcome']> = { state: 'pending' };
  promise.then(
    (value) => (outcome = { state: 'resolved', value }),
    (error: unknown) => (outcome = { state: 'rejected', error }),
  );
  return { promise, outcome: () => outcome };
}

/** Lets settled promises' callbacks run (setImmediate is not faked). */
function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

const fn = (): OnceFn => vi.fn(async () => 'ran');

/** Joins a caller: a `run` by default (with an fn), `fn: undefined` for a `wait`. */
function join(flight: Flight, init: Partial<CallerInit> = {}): Watched {
  return watch(
    flight.join({
      fn: fn(),
      settings: SETTINGS,
      waitTimeoutMs: 60_000,
      signal: undefined,
      started: performance.now(),
      detailed: false,
      trace: undefined,
      ...init,
    }),
  );
}

function rejection(w: Watched): unknown {
  const outcome = w.outcome();
  if (outcome.state !== 'rejected') throw new Error(`expected a rejection, the caller is ${outcome.state}`);
  return outcome.error;
}

function resolvedValue(w: Watched): unknown {
  const outcome = w.outcome();
  if (outcome.state !== 'resolved') throw new Error(`expected a value, the caller is ${outcome.state}`);
  return outcome.value;
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
});

afterEach(() => {
  vi.useRealTimers();
});

describe('Flight: the end of a flight', () => {
  it('gives the caller whose fn ran "leader" and the others "follower", each with its own waitedMs', async () => {
    const flight = new Flight(KEY);
    const first = join(flight, { detailed: true });
    vi.advanceTimersByTime(100);
    const second = join(flight, { detailed: true });
    const waiter = join(flight, { fn: undefined, detailed: true });
    const bare = join(flight);
    expect(flight.startRunning()).toBeTypeOf('function');
    vi.advanceTimersByTime(400);

    flight.succeed(DONE, 'here');
    await flush();
    expect(resolvedValue(first)).toEqual({
      ...DONE,
      role: 'leader',
      waitedMs: 500,
    } satisfies RunResult<unknown>);
    expect(resolvedValue(second)).toEqual({ ...DONE, role: 'follower', waitedMs: 400 });
    expect(resolvedValue(waiter)).toEqual({ ...DONE, role: 'follower', waitedMs: 400 });
    expect(resolvedValue(bare)).toEqual({ applied: 12 });
  });

  it('gives every caller "follower" when the value was produced elsewhere', async () => {
    const flight = new Flight(KEY);
    const callers = [join(flight, { detailed: true }), join(flight, { detailed: true, fn: undefined })];
    vi.advanceTimersByTime(250);
    flight.succeed(DONE, 'elsewhere');
    await flush();
    for (const c of callers) expect(resolvedValue(c)).toEqual({ ...DONE, role: 'follower', waitedMs: 250 });
  });

  it('gives every caller "cached" when the key was done before', async () => {
    const flight = new Flight(KEY);
    const callers = [join(flight, { detailed: true }), join(flight, { detailed: true })];
    flight.succeed(DONE, 'before');
    await flush();
    for (const c of callers) expect(resolvedValue(c)).toMatchObject({ role: 'cached', waitedMs: 0 });
  });

  it('rejects every caller with the flight’s error on fail()', async () => {
    const flight = new Flight(KEY);
    const callers = [join(flight), join(flight, { fn: undefined }), join(flight, { detailed: true })];
    const error = new Error('attempts spent');
    flight.fail(error);
    await flush();
    for (const c of callers) expect(rejection(c)).toBe(error);
    expect(flight.stopped).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('leaves no timer and no signal listener behind once it ends', async () => {
    const flight = new Flight(KEY);
    const controller = new AbortController();
    const caller = join(flight, { signal: controller.signal, waitTimeoutMs: 1000 });
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1);
    flight.succeed(DONE, 'elsewhere');
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    controller.abort();
    vi.advanceTimersByTime(5000);
    await flush();
    expect(resolvedValue(caller)).toEqual({ applied: 12 });
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('Flight: a caller’s own timeout and signal', () => {
  it('rejects only the caller whose waitTimeoutMs elapsed, with OnceTimeoutError, from one shared timer', async () => {
    const flight = new Flight(KEY);
    const slow = join(flight, { waitTimeoutMs: 5000 });
    const quick = join(flight, { waitTimeoutMs: 1000 });
    const middle = join(flight, { waitTimeoutMs: 3000, fn: undefined });
    expect(vi.getTimerCount()).toBe(1);

    vi.advanceTimersByTime(999);
    await flush();
    expect(quick.outcome().state).toBe('pending');

    vi.advanceTimersByTime(1);
    await flush();
    const error = rejection(quick);
    expect(error).toBeInstanceOf(OnceTimeoutError);
    expect(error).toMatchObject({
      name: 'OnceTimeoutError',
      code: 'ONCE_TIMEOUT',
      key: KEY,
      timeoutMs: 1000,
    });
    expect((error as Error).message).toMatch(/1000 ms.*waitTimeoutMs/);
    expect(slow.outcome().state).toBe('pending');
    expect(middle.outcome().state).toBe('pending');
    expect(flight.stopped).toBe(false);
    expect(vi.getTimerCount()).toBe(1);

    vi.advanceTimersByTime(2000);
    await flush();
    expect(rejection(middle)).toMatchObject({ timeoutMs: 3000 });
    expect(slow.outcome().state).toBe('pending');

    flight.succeed(DONE, 'elsewhere');
    await flush();
    expect(resolvedValue(slow)).toEqual({ applied: 12 });
  });

  it('moves its one timer to a later caller’s earlier deadline', async () => {
    const flight = new Flight(KEY);
    const first = join(flight, { waitTimeoutMs: 5000 });
    vi.advanceTimersByTime(1000);
    const later = join(flight, { waitTimeoutMs: 500 });
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(500);
    await flush();
    expect(rejection(later)).toBeInstanceOf(OnceTimeoutError);
    expect(first.outcome().state).toBe('pending');
    vi.advanceTimersByTime(3500);
    await flush();
    expect(rejection(first)).toMatchObject({ timeoutMs: 5000 });
  });

  it('times out thousands of callers with one timer', async () => {
    const flight = new Flight(KEY);
    const callers = Array.from({ length: 5000 }, () => join(flight, { waitTimeoutMs: 1000 }));
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(1000);
    await flush();
    expect(callers.every((c) => rejection(c) instanceof OnceTimeoutError)).toBe(true);
    expect(flight.stopped).toBe(true);
  });

  it('rejects only the caller whose signal aborted, with an error named AbortError', async () => {
    const flight = new Flight(KEY);
    const controller = new AbortController();
    const aborted = join(flight, { signal: controller.signal });
    const other = join(flight);
    const reason = new Error('client went away');
    controller.abort(reason);
    await flush();

    const error = rejection(aborted);
    expect(error).toBeInstanceOf(OnceAbortError);
    expect((error as Error).name).toBe('AbortError');
    expect((error as Error).cause).toBe(reason);
    expect(other.outcome().state).toBe('pending');
    expect(flight.stopped).toBe(false);

    flight.succeed(DONE, 'elsewhere');
    await flush();
    expect(resolvedValue(other)).toEqual({ applied: 12 });
  });

  it('stops when its last caller leaves, and runs each stop listener once', async () => {
    const flight = new Flight(KEY);
    const controller = new AbortController();
    join(flight, { waitTimeoutMs: 1000 });
    join(flight, { signal: controller.signal, fn: undefined });
    const listener = vi.fn();
    const removed = vi.fn();
    flight.onStop(listener);
    flight.onStop(removed)();

    vi.advanceTimersByTime(1000);
    expect(flight.stopped).toBe(false);
    controller.abort();
    expect(flight.stopped).toBe(true);
    expect(listener).toHaveBeenCalledTimes(1);
    expect(removed).not.toHaveBeenCalled();

    flight.fail(new Error('later'));
    flight.close();
    expect(listener).toHaveBeenCalledTimes(1);
    expect(vi.getTimerCount()).toBe(0);
    await flush();
  });

  it('runs a stop listener added after the flight stopped at once', () => {
    const flight = new Flight(KEY);
    flight.fail(new Error('done with'));
    const late = vi.fn();
    flight.onStop(late);
    expect(late).toHaveBeenCalledTimes(1);
  });
});

describe('Flight: the caller whose fn runs', () => {
  it('runs the fn of the earliest caller that has one (a wait caller has none)', () => {
    const flight = new Flight(KEY);
    const a = fn();
    const b = fn();
    join(flight, { fn: undefined });
    join(flight, { fn: a });
    join(flight, { fn: b });
    expect(flight.running).toBe(false);
    expect(flight.startRunning()).toBe(a);
    expect(flight.running).toBe(true);
  });

  it('runs nothing for a flight of wait callers', () => {
    const flight = new Flight(KEY);
    join(flight, { fn: undefined });
    expect(flight.startRunning()).toBeUndefined();
    expect(flight.running).toBe(false);
  });

  it('takes the runner off the timer and its signal: from then on fn’s lease rules bound its call', async () => {
    const flight = new Flight(KEY);
    const controller = new AbortController();
    const runner = join(flight, { waitTimeoutMs: 100, signal: controller.signal, detailed: true });
    const waiter = join(flight, { fn: undefined, waitTimeoutMs: 10_000 });
    flight.startRunning();
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);

    vi.advanceTimersByTime(5000);
    controller.abort();
    await flush();
    expect(runner.outcome().state).toBe('pending');
    expect(waiter.outcome().state).toBe('pending');
    expect(vi.getTimerCount()).toBe(1); // still serving the waiter

    flight.succeed(DONE, 'here');
    await flush();
    expect(resolvedValue(runner)).toMatchObject({ role: 'leader', waitedMs: 5000 });
    expect(resolvedValue(waiter)).toEqual({ applied: 12 });
  });

  it('keeps running when every other caller leaves: the shared work is no one caller’s to cancel', async () => {
    const flight = new Flight(KEY);
    join(flight);
    const other = join(flight, { waitTimeoutMs: 100 });
    flight.startRunning();
    vi.advanceTimersByTime(100);
    await flush();
    expect(rejection(other)).toBeInstanceOf(OnceTimeoutError);
    expect(flight.stopped).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('rejects only the runner on endRun(); the others stay to take over', async () => {
    const flight = new Flight(KEY);
    const b = fn();
    const runner = join(flight);
    const next = join(flight, { fn: b, settings: { ...SETTINGS, leaseMs: 9000 } });
    const waiter = join(flight, { fn: undefined });
    flight.startRunning();
    flight.leadFrame = 'redisOnceFn1';

    const error = new Error('fn threw');
    flight.endRun(error);
    await flush();
    expect(rejection(runner)).toBe(error);
    expect(next.outcome().state).toBe('pending');
    expect(waiter.outcome().state).toBe('pending');
    expect(flight.running).toBe(false);
    expect(flight.leadFrame).toBeUndefined();
    expect(flight.stopped).toBe(false);

    expect(flight.nextRunner()).toEqual({ ...SETTINGS, leaseMs: 9000 });
    expect(flight.startRunning()).toBe(b);
  });

  it('stops when endRun() takes its last caller', async () => {
    const flight = new Flight(KEY);
    const runner = join(flight);
    flight.startRunning();
    flight.endRun(new Error('lease lost'));
    await flush();
    expect(rejection(runner)).toBeInstanceOf(Error);
    expect(flight.stopped).toBe(true);
  });

  it('tells the settings of the first caller with an fn, with the most attempts one of them allows', () => {
    const flight = new Flight(KEY);
    join(flight, { fn: undefined, settings: { ...SETTINGS, leaseMs: 111, maxAttempts: 9 } });
    expect(flight.nextRunner()).toBeUndefined();
    const first = { leaseMs: 5000, maxAttempts: 1, doneTtlMs: 60_000 };
    join(flight, { settings: first });
    join(flight, { settings: { ...SETTINGS, leaseMs: 7000, maxAttempts: 4 } });
    // A wait caller's 9 does not count: only a caller with an fn can take the key over.
    expect(flight.nextRunner()).toEqual({ ...first, maxAttempts: 4 });
    expect(flight.maxAttempts()).toBe(9);
  });

  it('fails fast only the callers whose own maxAttempts the ended attempts reach', async () => {
    const flight = new Flight(KEY);
    const one = join(flight, { settings: { ...SETTINGS, maxAttempts: 1 } });
    const three = join(flight, { settings: { ...SETTINGS, maxAttempts: 3 } });
    const waiting = join(flight, { fn: undefined, settings: { ...SETTINGS, maxAttempts: 2 } });
    const error = new Error('spent');
    flight.failSpent(1, () => error);
    await flush();
    expect(rejection(one)).toBe(error);
    expect(three.outcome().state).toBe('pending');
    expect(waiting.outcome().state).toBe('pending');
    flight.failSpent(2, () => error);
    await flush();
    expect(rejection(waiting)).toBe(error);
    expect(three.outcome().state).toBe('pending');
    expect(flight.stopped).toBe(false);
  });

  it('calls onRunnerJoined when a caller with an fn joins a flight of wait callers, once', async () => {
    const flight = new Flight(KEY);
    const joined = vi.fn();
    join(flight, { fn: undefined });
    flight.onRunnerJoined(joined);
    join(flight, { fn: undefined });
    expect(joined).not.toHaveBeenCalled();

    const runner = join(flight, { waitTimeoutMs: 100 });
    expect(joined).toHaveBeenCalledTimes(1);
    join(flight);
    expect(joined).toHaveBeenCalledTimes(1);
    expect(runner.outcome().state).toBe('pending');
  });

  it('calls onRunnerJoined again once the callers with an fn have left', async () => {
    const flight = new Flight(KEY);
    const joined = vi.fn();
    join(flight, { fn: undefined });
    flight.onRunnerJoined(joined);
    join(flight, { waitTimeoutMs: 100 });
    vi.advanceTimersByTime(100);
    await flush();
    expect(flight.nextRunner()).toBeUndefined();
    join(flight);
    expect(joined).toHaveBeenCalledTimes(2);
  });
});

describe('Flight: close()', () => {
  it('rejects waiting callers with OnceClosedError, and lets the running one wait for its fn', async () => {
    const flight = new Flight(KEY);
    const runner = join(flight, { detailed: true });
    const other = join(flight);
    const waiter = join(flight, { fn: undefined });
    flight.startRunning();

    flight.close();
    await flush();
    for (const c of [other, waiter]) {
      expect(rejection(c)).toBeInstanceOf(OnceClosedError);
      expect(rejection(c)).toMatchObject({ name: 'OnceClosedError', key: KEY });
    }
    expect(runner.outcome().state).toBe('pending');
    expect(flight.stopped).toBe(true);
    expect(flight.stopped).toBe(true);
    expect(vi.getTimerCount()).toBe(0);

    flight.endRun(new OnceClosedError(KEY));
    await flush();
    expect(rejection(runner)).toBeInstanceOf(OnceClosedError);
  });

  it('rejects every caller of a flight that runs nothing', async () => {
    const flight = new Flight(KEY);
    const callers = [join(flight), join(flight, { fn: undefined })];
    flight.close();
    await flush();
    for (const c of callers) expect(rejection(c)).toBeInstanceOf(OnceClosedError);
    expect(flight.startRunning()).toBeUndefined();
  });
});

describe('Flight: observation', () => {
  it('starts unobserved', () => {
    expect(new Flight(KEY).observedAt).toBe(-1);
  });
});
