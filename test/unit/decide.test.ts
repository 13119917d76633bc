/**
 * decide() is the whole protocol's choice as a pure function: a snapshot of a key and maxAttempts in,
 * done | wait | failed | lead out. Every rule is a row with the reason it exists. The snapshots it reads
 * come from decodeState / decodeMessage, tested at the end.
 */
import { describe, expect, it } from 'vitest';
import { type Decision, decide, lastError, type Phase, phaseOf, previousAttempt } from '../../src/decide.js';
import { decodeMessage, decodeState, IDLE, type Snapshot, type StoredState } from '../../src/state.js';

const STARTED = 1_700_000_000_000;

function stateOf(fields: Partial<StoredState>): StoredState {
  return { ...IDLE, ...fields };
}

/** A snapshot of `fields`; nobody holds the lease unless `leasePttl` says so. */
function snapshot(fields: Partial<StoredState>, leasePttl = -2): Snapshot {
  return { state: stateOf(fields), leasePttl, statePttl: -1, fence: fields.token ?? 0 };
}

const running = (attempts: number, extra: Partial<StoredState> = {}) =>
  ({
    status: 'running',
    token: 10 + attempts,
    owner: 'node-a',
    attempts,
    startedAt: STARTED,
    ...extra,
  }) as const;
const failed = (attempts: number, extra: Partial<StoredState> = {}) =>
  ({
    status: 'failed',
    token: 10 + attempts,
    owner: 'node-a',
    attempts,
    startedAt: STARTED,
    error: { name: 'TypeError', message: 'boom' },
    ...extra,
  }) as const;
const done = {
  status: 'done',
  token: 11,
  owner: 'node-a',
  attempts: 1,
  valueJson: '{"applied":12}',
} as const;

describe('phaseOf', () => {
  for (const { snap, phase, what, why } of [
    { what: 'no state', snap: snapshot({}), phase: { kind: 'idle' }, why: 'never run, reset, or expired' },
    { what: 'done', snap: snapshot(done), phase: { kind: 'done' }, why: 'the value is recorded' },
    {
      what: 'done while a lease is held',
      snap: snapshot(done, 900),
      phase: { kind: 'done' },
      why: 'a recorded value is final, whatever a lease says',
    },
    {
      what: 'running with its lease',
      snap: snapshot(running(1), 1200),
      phase: { kind: 'running', leaseMs: 1200 },
      why: 'a leader at work',
    },
    {
      what: 'running without a lease',
      snap: snapshot(running(1)),
      phase: { kind: 'crashed' },
      why: 'a leader that stopped renewing: crashed, or paused past its lease',
    },
    {
      what: 'idle with a lease',
      snap: snapshot({}, 500),
      phase: { kind: 'running', leaseMs: 500 },
      why: 'on a quorum a claim may be half-way through its masters',
    },
    {
      what: 'failed with a lease',
      snap: snapshot(failed(1), 500),
      phase: { kind: 'running', leaseMs: 500 },
      why: 'a takeover holds the lease before its state is written everywhere',
    },
    {
      what: 'failed',
      snap: snapshot(failed(1)),
      phase: { kind: 'failed' },
      why: 'fn threw, the lease was released',
    },
  ] satisfies Array<{ what: string; snap: Snapshot; phase: Phase; why: string }>) {
    it(`reads ${what} as ${phase.kind} (${why})`, () => {
      expect(phaseOf(snap)).toEqual(phase);
    });
  }
});

describe('decide', () => {
  const crashedSummary = {
    name: 'LeaseLostError',
    message: 'the leader node-a stopped renewing its lease (crashed, or paused past its lease)',
  };

  for (const { snap, maxAttempts, decision, what, why } of [
    {
      what: 'a done key',
      snap: snapshot(done),
      maxAttempts: 3,
      decision: { kind: 'done' },
      why: 'every later caller takes the stored value',
    },
    {
      what: 'a done key with attempts beyond maxAttempts',
      snap: snapshot({ ...done, attempts: 5 }),
      maxAttempts: 1,
      decision: { kind: 'done' },
      why: 'attempts only matter for a key that is not done',
    },
    {
      what: 'a running key whose lease is held',
      snap: snapshot(running(1), 2500),
      maxAttempts: 3,
      decision: { kind: 'wait', leaseMs: 2500 },
      why: 'a leader is at work: wait for its message, or its lease deadline',
    },
    {
      what: 'an idle key whose lease is held',
      snap: snapshot({}, 40),
      maxAttempts: 3,
      decision: { kind: 'wait', leaseMs: 40 },
      why: 'a held lease means someone leads, whatever the state',
    },
    {
      what: 'a failed key with attempts spent whose lease is held',
      snap: snapshot(failed(3), 700),
      maxAttempts: 3,
      decision: { kind: 'wait', leaseMs: 700 },
      why: 'a held lease comes before the attempt count',
    },
    {
      what: 'an idle key',
      snap: snapshot({}),
      maxAttempts: 3,
      decision: { kind: 'lead', attempt: 1, previous: undefined },
      why: 'first attempt, nothing to repair',
    },
    {
      what: 'an idle key whose counter already rose (reset)',
      snap: { ...snapshot({}), fence: 42 },
      maxAttempts: 1,
      decision: { kind: 'lead', attempt: 1, previous: undefined },
      why: 'after a reset the count starts again, with no previous',
    },
    {
      what: 'a crashed key (running, no lease) with attempts left',
      snap: snapshot(running(1)),
      maxAttempts: 3,
      decision: {
        kind: 'lead',
        attempt: 2,
        previous: { owner: 'node-a', fencingToken: 11, startedAt: STARTED, outcome: 'crashed' },
      },
      why: 'take over, and tell fn what the dead leader may have left half-done',
    },
    {
      what: 'a crashed key carrying an outcome field',
      snap: snapshot(running(1, { outcome: 'failed' })),
      maxAttempts: 3,
      decision: {
        kind: 'lead',
        attempt: 2,
        previous: { owner: 'node-a', fencingToken: 11, startedAt: STARTED, outcome: 'crashed' },
      },
      why: 'a running state taken over is a crash, whatever an old outcome field says',
    },
    {
      what: 'a crashed key with the last attempt spent',
      snap: snapshot(running(3)),
      maxAttempts: 3,
      decision: { kind: 'failed', attempts: 3, last: crashedSummary },
      why: 'a crash spends an attempt too, so maxAttempts bounds crash loops',
    },
    {
      what: 'a failed key with attempts left',
      snap: snapshot(failed(1)),
      maxAttempts: 3,
      decision: {
        kind: 'lead',
        attempt: 2,
        previous: { owner: 'node-a', fencingToken: 11, startedAt: STARTED, outcome: 'failed' },
      },
      why: 'a waiter takes over while attempts remain; no outcome recorded reads as failed',
    },
    {
      what: 'a failed key whose attempt lost its lease',
      snap: snapshot(failed(2, { outcome: 'lease-lost' })),
      maxAttempts: 3,
      decision: {
        kind: 'lead',
        attempt: 3,
        previous: { owner: 'node-a', fencingToken: 12, startedAt: STARTED, outcome: 'lease-lost' },
      },
      why: 'previous.outcome is the recorded outcome',
    },
    {
      what: 'a failed key one attempt short of maxAttempts',
      snap: snapshot(failed(2)),
      maxAttempts: 3,
      decision: {
        kind: 'lead',
        attempt: 3,
        previous: { owner: 'node-a', fencingToken: 12, startedAt: STARTED, outcome: 'failed' },
      },
      why: 'the last allowed attempt is attempt maxAttempts',
    },
    {
      what: 'a failed key at maxAttempts',
      snap: snapshot(failed(3)),
      maxAttempts: 3,
      decision: { kind: 'failed', attempts: 3, last: { name: 'TypeError', message: 'boom' } },
      why: 'every allowed attempt is spent: fail fast with the last error',
    },
    {
      what: 'a failed key past a lowered maxAttempts',
      snap: snapshot(failed(3)),
      maxAttempts: 1,
      decision: { kind: 'failed', attempts: 3, last: { name: 'TypeError', message: 'boom' } },
      why: 'a per-call maxAttempts below the count fails too',
    },
    {
      what: 'a failed key at maxAttempts 1 after one attempt',
      snap: snapshot(failed(1)),
      maxAttempts: 1,
      decision: { kind: 'failed', attempts: 1, last: { name: 'TypeError', message: 'boom' } },
      why: 'maxAttempts 1 means no takeover',
    },
    {
      what: 'a failed key with no recorded error, attempts spent',
      snap: snapshot(failed(2, { error: undefined })),
      maxAttempts: 2,
      decision: { kind: 'failed', attempts: 2, last: { name: 'Error', message: 'unknown error' } },
      why: 'a failure always carries some summary',
    },
  ] satisfies Array<{ what: string; snap: Snapshot; maxAttempts: number; decision: Decision; why: string }>) {
    it(`decides on ${what}: ${decision.kind} (${why})`, () => {
      expect(decide(snap, maxAttempts)).toEqual(decision);
    });
  }
});

describe('previousAttempt', () => {
  for (const { state, outcome, what, why } of [
    { what: 'idle', state: IDLE, outcome: undefined, why: 'nothing came before' },
    { what: 'done', state: stateOf(done), outcome: undefined, why: 'a done key is never taken over' },
    { what: 'running', state: stateOf(running(1)), outcome: 'crashed', why: 'it stopped renewing' },
    { what: 'failed', state: stateOf(failed(1)), outcome: 'failed', why: 'fn threw' },
    {
      what: 'failed after a lost lease',
      state: stateOf(failed(1, { outcome: 'lease-lost' })),
      outcome: 'lease-lost',
      why: 'the recorded outcome',
    },
  ] satisfies Array<{ what: string; state: StoredState; outcome: string | undefined; why: string }>) {
    it(`tells a takeover of a ${what} state: ${outcome} (${why})`, () => {
      expect(previousAttempt(state)?.outcome).toBe(outcome);
    });
  }

  it('carries the replaced attempt’s owner, token and start', () => {
    expect(previousAttempt(stateOf(failed(2, { owner: 'node-b', startedAt: 5 })))).toEqual({
      owner: 'node-b',
      fencingToken: 12,
      startedAt: 5,
      outcome: 'failed',
    });
  });
});

describe('lastError', () => {
  for (const { snap, error, what, why } of [
    { what: 'idle', snap: snapshot({}), error: undefined, why: 'no attempt ended' },
    { what: 'done', snap: snapshot(done), error: undefined, why: 'it ended with a value' },
    { what: 'running', snap: snapshot(running(1), 800), error: undefined, why: 'it has not ended' },
    {
      what: 'crashed, with an owner',
      snap: snapshot(running(1)),
      error: {
        name: 'LeaseLostError',
        message: 'the leader node-a stopped renewing its lease (crashed, or paused past its lease)',
      },
      why: 'the crash is named, with the leader',
    },
    {
      what: 'crashed, without an owner',
      snap: snapshot(running(1, { owner: undefined })),
      error: {
        name: 'LeaseLostError',
        message: 'the leader stopped renewing its lease (crashed, or paused past its lease)',
      },
      why: 'no empty name in the message',
    },
    {
      what: 'failed',
      snap: snapshot(failed(1)),
      error: { name: 'TypeError', message: 'boom' },
      why: 'the recorded error',
    },
  ] satisfies Array<{ what: string; snap: Snapshot; error: ReturnType<typeof lastError>; why: string }>) {
    it(`of a ${what} key is ${error?.name ?? 'none'} (${why})`, () => {
      expect(lastError(snap)).toEqual(error);
    });
  }
});

describe('decodeState', () => {
  for (const { flat, expected, what, why } of [
    {
      what: 'a running state',
      flat: [
        'status',
        'running',
        'token',
        '7',
        'owner',
        'node-1',
        'attempts',
        '2',
        'startedAt',
        '1700000000000',
      ],
      expected: { status: 'running', token: 7, owner: 'node-1', attempts: 2, startedAt: STARTED },
      why: 'numbers are parsed',
    },
    {
      what: 'an unknown status',
      flat: ['status', 'paused', 'token', '7', 'attempts', '2'],
      expected: IDLE,
      why: 'anything that is not running, done or failed is no state',
    },
    { what: 'no fields', flat: [], expected: IDLE, why: 'HGETALL of a missing hash' },
    { what: 'not a list', flat: 'status', expected: IDLE, why: 'a foreign reply' },
    {
      what: 'numbers that are not integers',
      flat: ['status', 'done', 'token', 'x', 'attempts', '1.5', 'finishedAt', ''],
      expected: { status: 'done', token: 0, attempts: 0, finishedAt: undefined },
      why: 'a bad number reads as absent, never NaN',
    },
    {
      what: 'an error as JSON',
      flat: ['status', 'failed', 'error', '{"name":"TypeError","message":"boom"}', 'outcome', 'lease-lost'],
      expected: { status: 'failed', error: { name: 'TypeError', message: 'boom' }, outcome: 'lease-lost' },
      why: 'the error summary the fail script stores',
    },
    {
      what: 'an error that is not JSON',
      flat: ['status', 'failed', 'error', 'plain text'],
      expected: { status: 'failed', error: { name: 'Error', message: 'plain text' } },
      why: 'kept as the message',
    },
    {
      what: 'an unknown outcome',
      flat: ['status', 'failed', 'outcome', 'exploded'],
      expected: { status: 'failed', outcome: undefined },
      why: 'only our outcomes reach ctx.previous',
    },
  ] satisfies Array<{ what: string; flat: unknown; expected: Partial<StoredState>; why: string }>) {
    it(`decodes ${what} (${why})`, () => {
      expect(decodeState(flat)).toEqual(stateOf(expected));
    });
  }
});

describe('decodeMessage', () => {
  it('decodes Lua’s empty table `{}` as an idle state (a reset)', () => {
    expect(decodeMessage('{}')).toEqual({ state: IDLE, valueOmitted: false });
  });

  it('decodes a published done state with its value', () => {
    const message = JSON.stringify(['status', 'done', 'token', '3', 'attempts', '1', 'value', '{"a":1}']);
    expect(decodeMessage(message)).toEqual({
      state: stateOf({ status: 'done', token: 3, attempts: 1, valueJson: '{"a":1}' }),
      valueOmitted: false,
    });
  });

  it('says when a large value was left out of the message, to be read from the state', () => {
    const message = JSON.stringify(['status', 'done', 'token', '3', 'attempts', '1', 'valueOmitted', '1']);
    expect(decodeMessage(message)).toEqual({
      state: stateOf({ status: 'done', token: 3, attempts: 1 }),
      valueOmitted: true,
    });
  });

  for (const { message, why } of [
    { message: 'not json', why: 'garbage on our channel' },
    { message: '{"status":"done"}', why: 'JSON that is not the flat list' },
    { message: '"text"', why: 'a JSON string' },
    { message: '', why: 'an empty message' },
  ]) {
    it(`refuses ${message} as not ours (${why})`, () => {
      expect(decodeMessage(message)).toBeUndefined();
    });
  }
});
