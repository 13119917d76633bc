/**
 * reconcile() turns the snapshots of several independent masters into one view of a key. Each row is
 * a disagreement masters can have (one restarted empty, missed a write, missed a reset) and the view
 * the rules give, with the reason the rule exists.
 */
import { describe, expect, it } from 'vitest';
import { decide } from '../../src/decide.js';
import { type Reconciled, reconcile, seenAlike } from '../../src/quorum/reconcile.js';
import { IDLE, type Snapshot, type StoredState } from '../../src/state.js';

interface Master {
  /** The master's counter; defaults to the state's token. */
  fence?: number;
  /** ms the lease has left on this master; -2 (nobody) by default. */
  lease?: number;
  /** ms the done state has left on this master; -1 by default. */
  ttl?: number;
  attempts?: number;
}

const VALUE = '{"applied":12}';

function state(status: StoredState['status'], token: number, attempts: number): StoredState {
  if (status === 'idle') return IDLE;
  return {
    ...IDLE,
    status,
    token,
    attempts,
    owner: `node-${token}`,
    startedAt: 1_000 * token,
    valueJson: status === 'done' ? VALUE : undefined,
    error: status === 'failed' ? { name: 'Error', message: `attempt ${token} failed` } : undefined,
  };
}

/** One master's snapshot: its state at `token` (attempts = token unless said), lease, ttl, counter. */
function master(status: StoredState['status'], token: number, m: Master = {}): Snapshot {
  return {
    state: state(status, token, m.attempts ?? token),
    leasePttl: m.lease ?? -2,
    statePttl: m.ttl ?? -1,
    fence: m.fence ?? token,
  };
}
const idle = (fence: number, m: Master = {}) => master('idle', 0, { ...m, fence });

interface Row {
  why: string;
  answers: Snapshot[];
  /** Defaults to a majority of the answers. */
  majority?: number;
  status: StoredState['status'];
  token: number;
  attempts: number;
  repair?: Reconciled['repair'];
}

function check({ answers, majority, status, token, attempts, repair }: Row): Reconciled {
  const result = reconcile(answers, majority ?? Math.floor(answers.length / 2) + 1);
  expect(result.snapshot.state.status).toBe(status);
  expect(result.snapshot.state.token).toBe(token);
  expect(result.snapshot.state.attempts).toBe(attempts);
  expect(result.repair).toEqual(repair);
  return result;
}

describe('reconcile: the state', () => {
  for (const row of [
    {
      why: 'a majority’s done wins over a minority’s newer failed attempt',
      answers: [master('done', 5), master('done', 5), master('failed', 6)],
      status: 'done',
      token: 5,
      attempts: 5,
    },
    {
      why: 'a majority’s done wins over a minority that restarted empty',
      answers: [master('done', 5), idle(0), master('done', 5)],
      status: 'done',
      token: 5,
      attempts: 5,
    },
    {
      why: 'a majority’s done wins over a minority that was reset (a reset a majority missed did not happen)',
      answers: [master('done', 5), master('done', 5), idle(5)],
      status: 'done',
      token: 5,
      attempts: 5,
    },
    {
      why: 'three of five masters done is a majority’s done',
      answers: [
        master('failed', 7),
        master('done', 5),
        master('done', 5),
        master('failed', 7),
        master('done', 5),
      ],
      status: 'done',
      token: 5,
      attempts: 5,
    },
    {
      why: 'every master empty: idle',
      answers: [idle(0), idle(0), idle(0)],
      status: 'idle',
      token: 0,
      attempts: 0,
    },
    {
      why: 'a reset one master missed (two idle at the token, one holding done): idle, no attempt spent',
      answers: [idle(5), master('done', 5, { attempts: 2 }), idle(6)],
      status: 'idle',
      token: 0,
      attempts: 0,
    },
    {
      why: 'a reset one master missed while it held a running state: idle, not a crash',
      answers: [master('running', 5), idle(5), idle(5)],
      status: 'idle',
      token: 0,
      attempts: 0,
    },
    {
      why: 'one reset master beside a minority’s state: the attempt is over',
      answers: [master('failed', 5, { attempts: 3 }), idle(5), idle(0)],
      status: 'idle',
      token: 0,
      attempts: 0,
    },
    {
      why: 'a master whose counter is behind the token was not reset: it missed the claim',
      answers: [master('running', 5, { lease: 900 }), master('running', 5, { lease: 900 }), idle(4)],
      status: 'running',
      token: 5,
      attempts: 5,
    },
    {
      why: 'the newest token wins over an older attempt',
      answers: [
        master('failed', 4),
        master('running', 5, { lease: 800 }),
        master('running', 5, { lease: 800 }),
      ],
      status: 'running',
      token: 5,
      attempts: 5,
    },
    {
      why: 'the newest token wins even over an older minority done',
      answers: [master('done', 4), master('failed', 5), master('failed', 5)],
      status: 'failed',
      token: 5,
      attempts: 5,
    },
    {
      why: 'where masters of the newest attempt disagree, the most advanced status counts (failed > running)',
      answers: [master('running', 5), master('failed', 5), idle(4)],
      status: 'failed',
      token: 5,
      attempts: 5,
    },
    {
      why: 'the attempts are the most any master of the newest attempt counted',
      answers: [master('failed', 5, { attempts: 2 }), master('running', 5, { attempts: 3 }), idle(0)],
      status: 'failed',
      token: 5,
      attempts: 3,
    },
  ] satisfies Array<Row>) {
    it(row.why, () => {
      check(row);
    });
  }
});

describe('reconcile: a minority’s done reads as running, with a repair plan', () => {
  for (const row of [
    {
      why: 'the masters behind are one at the same attempt without its completion and one at an older attempt',
      answers: [master('done', 5), master('running', 5), master('failed', 4)],
      status: 'running',
      token: 5,
      attempts: 5,
      repair: { from: 0, to: [1, 2] },
    },
    {
      why: 'a master that restarted empty (its counter at 0) is behind, not reset',
      answers: [master('failed', 4), idle(0), master('done', 5)],
      status: 'running',
      token: 5,
      attempts: 5,
      repair: { from: 2, to: [0, 1] },
    },
    {
      why: 'a master that was reset (idle, counter at the token) is never named, so repair never undoes a reset',
      answers: [master('done', 5), master('running', 5), master('running', 5), idle(5), idle(0)],
      status: 'running',
      token: 5,
      attempts: 5,
      repair: { from: 0, to: [1, 2, 4] },
    },
  ] satisfies Array<Row>) {
    it(row.why, () => {
      const { snapshot } = check(row);
      // Not done yet: no value, and no expiry to remember it by.
      expect(snapshot.state.valueJson).toBeUndefined();
      expect(snapshot.statePttl).toBe(-1);
    });
  }
});

describe('reconcile: the lease and the counter', () => {
  for (const { leases, leasePttl, why } of [
    {
      why: 'held by every master: as long as a majority still holds it (two of three)',
      leases: [900, 400, 700],
      leasePttl: 700,
    },
    { why: 'held by a majority: the majority’s shortest', leases: [900, 400, -2], leasePttl: 400 },
    { why: 'held by one of three: not held', leases: [900, -2, -2], leasePttl: -2 },
    { why: 'held by nobody', leases: [-2, -2, -2], leasePttl: -2 },
    { why: 'held by three of five: the third longest', leases: [600, -2, 900, 700, -2], leasePttl: 600 },
    { why: 'held by two of five: not held', leases: [600, -2, 900, -2, -2], leasePttl: -2 },
  ] satisfies Array<{ why: string; leases: number[]; leasePttl: number }>) {
    it(`counts the lease ${why}`, () => {
      const answers = leases.map((lease) => master('running', 5, { lease }));
      expect(reconcile(answers, Math.floor(answers.length / 2) + 1).snapshot.leasePttl).toBe(leasePttl);
    });
  }

  it('reports the highest counter any master reached (tokens count as reached)', () => {
    const answers = [master('running', 5, { fence: 5 }), idle(9), master('failed', 11, { fence: 3 })];
    expect(reconcile(answers, 2).snapshot.fence).toBe(11);
    expect(reconcile([idle(4), idle(9), idle(2)], 2).snapshot.fence).toBe(9);
  });

  it('carries the lease and counter into the idle view of a missed reset', () => {
    const { snapshot } = reconcile([idle(7, { lease: 500 }), idle(7, { lease: 450 }), master('done', 7)], 2);
    expect(snapshot).toEqual({ state: IDLE, leasePttl: 450, statePttl: -1, fence: 7 });
  });

  /*
   * The done state counts only while a majority holds it, so its expiry is the majority's (the
   * majority-th longest ttl, -1 counting as forever), as for the lease: the memo keeps the value that
   * long (coordinator: expiry(sentAt, snapshot.statePttl)), and must not outlive the state it mirrors.
   */
  for (const { ttls, statePttl, why } of [
    { why: 'every master expires together', ttls: [5000, 5000, 5000], statePttl: 5000 },
    { why: 'one master keeps it longer than the majority', ttls: [5000, 100, 100], statePttl: 100 },
    { why: 'one master keeps it for ever, the majority does not', ttls: [-1, 100, 100], statePttl: 100 },
  ] satisfies Array<{ why: string; ttls: number[]; statePttl: number }>) {
    it(`gives a majority’s done the majority’s expiry when ${why}`, () => {
      const answers = ttls.map((ttl) => master('done', 5, { ttl }));
      expect(reconcile(answers, 2).snapshot.statePttl).toBe(statePttl);
    });
  }
});

describe('reconcile, then decide', () => {
  it('starts over at attempt 1 with no previous after a reset one master missed', () => {
    // The bug this rule fixes: the master that missed the reset made its old done read as a crashed
    // run, spending an attempt and setting `previous` right after the reset.
    const answers = [master('done', 5, { attempts: 2 }), idle(5), idle(5)];
    expect(decide(reconcile(answers, 2).snapshot, 3)).toEqual({
      kind: 'lead',
      attempt: 1,
      previous: undefined,
    });
  });

  it('waits while a majority holds the lease of a half-written claim', () => {
    const answers = [master('running', 6, { lease: 900 }), idle(5, { lease: 800 }), master('failed', 5)];
    expect(decide(reconcile(answers, 2).snapshot, 3)).toEqual({ kind: 'wait', leaseMs: 800 });
  });

  it('takes a majority’s done as done', () => {
    const answers = [master('done', 5), master('running', 6), master('done', 5)];
    expect(decide(reconcile(answers, 2).snapshot, 3)).toEqual({ kind: 'done' });
  });
});

describe('seenAlike: may a claim decide without the masters yet to answer?', () => {
  const rows: Array<{ why: string; answers: Snapshot[]; alike: boolean }> = [
    { why: 'a fresh key everywhere', answers: [idle(0), idle(0)], alike: true },
    {
      why: 'one attempt, one master missed how it ended (a failure)',
      answers: [master('failed', 1), master('running', 1)],
      alike: true,
    },
    {
      why: 'a reset one master missed: both have seen attempt 5',
      answers: [idle(5), master('done', 5)],
      alike: true,
    },
    {
      why: 'a master that restarted empty beside one that saw attempt 3: the last may hold its done',
      answers: [idle(0), master('running', 3)],
      alike: false,
    },
    {
      why: 'a master that missed a whole attempt',
      answers: [master('failed', 2), master('running', 3)],
      alike: false,
    },
  ];
  for (const { why, answers, alike } of rows) {
    it(why, () => {
      expect(seenAlike(answers)).toBe(alike);
    });
  }
});
