import { IDLE, type Snapshot, type StoredState } from '../state.js';

/**
 * One view of a key from the snapshots of several independent masters (a quorum), as a pure function.
 *
 * Masters disagree when one restarted empty, missed a write, or missed a reset. The rules, in order:
 *
 * 1. **A majority's `done` wins**, whatever a minority says.
 * 2. **A reset wins over a minority's state.** A master with no state whose counter already reached the
 *    newest token has seen that attempt and forgotten it since (reset, an expired done state, or a claim
 *    given back): unless a majority still holds that attempt, it is over, and the key is idle with no
 *    attempts spent. (Without this rule a master that missed a reset would make its old `done` read as
 *    a crashed run: an attempt spent, and `previous` set, right after the reset.)
 * 3. Otherwise **the newest attempt** (highest fencing token) is the state; where its masters disagree,
 *    the most advanced status counts (done > failed > running). A `done` held by fewer than a majority
 *    is not done yet: it reads as running, and `repair` names the masters to copy it to (read-repair),
 *    after which it is.
 *
 * The lease counts as held while a majority holds it: `leasePttl` is the majority's shortest.
 */
export interface Reconciled {
  snapshot: Snapshot;
  /** A done state held by fewer than a majority: copy `from`'s state to the masters at `to`. */
  repair: { from: number; to: number[] } | undefined;
}

export function reconcile(answers: readonly Snapshot[], majority: number): Reconciled {
  const fence = Math.max(0, ...answers.map((a) => Math.max(a.fence, a.state.token)));
  const pttls = answers.map((a) => a.leasePttl).sort((a, b) => b - a);
  const majorityPttl = pttls[majority - 1] ?? -2;
  const leasePttl = majorityPttl > 0 ? majorityPttl : -2;
  const view = (state: StoredState, statePttl: number): Snapshot => ({ state, leasePttl, statePttl, fence });

  // 1. A majority's done, for as long as a majority keeps it (-1: for ever).
  for (const answer of answers) {
    if (answer.state.status !== 'done') continue;
    const holding = answers.filter((a) => a.state.status === 'done' && a.state.token === answer.state.token);
    if (holding.length < majority) continue;
    const ttls = holding
      .map((a) => (a.statePttl < 0 ? Number.POSITIVE_INFINITY : a.statePttl))
      .sort((a, b) => b - a);
    const kept = ttls[majority - 1]!;
    const state = { ...answer.state, attempts: commonest(holding.map((a) => a.state.attempts)) };
    return { snapshot: view(state, kept === Number.POSITIVE_INFINITY ? -1 : kept), repair: undefined };
  }

  const newest = Math.max(0, ...answers.map((a) => (a.state.status === 'idle' ? 0 : a.state.token)));
  if (newest === 0) return { snapshot: view(IDLE, -1), repair: undefined };
  const holders = answers.filter((a) => a.state.status !== 'idle' && a.state.token === newest);
  const forgotten = (a: Snapshot) => a.state.status === 'idle' && a.fence >= newest;

  // 2. A reset that a minority missed.
  if (holders.length < majority && answers.some(forgotten))
    return { snapshot: view(IDLE, -1), repair: undefined };

  // 3. The newest attempt, at its most advanced.
  const best = holders.reduce((a, b) => (rank(b.state) > rank(a.state) ? b : a));
  const attempts = commonest(holders.map((a) => a.state.attempts));
  if (best.state.status !== 'done') {
    return { snapshot: view({ ...best.state, attempts }, best.statePttl), repair: undefined };
  }
  // Behind: an older attempt or none (but not forgotten: that master was reset), or this attempt
  // without its completion.
  const to: number[] = [];
  answers.forEach((a, i) => {
    const behind = a.state.token < newest || (a.state.token === newest && a.state.status !== 'done');
    if (behind && !forgotten(a) && a.fence <= newest) to.push(i);
  });
  return {
    snapshot: view({ ...best.state, status: 'running', valueJson: undefined }, -1),
    repair: { from: answers.indexOf(best), to },
  };
}

/**
 * True when every master has seen the same newest attempt (its counter and state name one token),
 * whatever each knows of how it ended. Any two majorities share a master, so when the masters that
 * answered agree on it, the ones that did not can add no newer attempt, only news of this one — unless
 * a master lost its data or missed whole attempts, which is when they disagree.
 */
export function seenAlike(answers: readonly Snapshot[]): boolean {
  const newest = (a: Snapshot) => Math.max(a.fence, a.state.token);
  return answers.every((a) => newest(a) === newest(answers[0]!));
}

/**
 * The attempts most masters count (the highest among equals): a master that missed a reset, or an
 * attempt, counts differently from the rest.
 */
function commonest(counts: number[]): number {
  const seen = new Map<number, number>();
  for (const n of counts) seen.set(n, (seen.get(n) ?? 0) + 1);
  let best = counts[0] ?? 0;
  for (const [n, times] of seen) {
    const bestTimes = seen.get(best) ?? 0;
    if (times > bestTimes || (times === bestTimes && n > best)) best = n;
  }
  return best;
}

function rank(state: StoredState): number {
  return state.status === 'done' ? 3 : state.status === 'failed' ? 2 : 1;
}
