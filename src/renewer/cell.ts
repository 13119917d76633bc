/**
 * The memory a leader's thread and its standby renewer (thread.ts) share, and the one clock they agree
 * on. Each thread's performance.now() has its own origin; process.hrtime is one monotonic clock for
 * the whole process, so shared instants are hrtime microseconds, converted at the edges.
 *
 * A lease's cell (BigInt64, Atomics only):
 *   [0] PROVEN   when the last proven claim or renewal was sent, by either side; only ever raised
 *   [1] STATE    RUNNING, STOPPED (fn settled, lost, closed: never renew again) or REFUSED (the
 *                renewer was told the lease is not ours)
 *   [2] RENEWALS renewals the standby renewer proved (figures and tests)
 *   [3] REPLIED  when the standby's last proven renewal was answered (Redis keeps the lease until then
 *                + the lease, at most: how long `close()` may wait for fn); only ever raised
 * The heartbeat (one per renewer): [0] when the leader's thread last showed signs of life.
 */
const PROVEN = 0;
const STATE = 1;
const RENEWALS = 2;
const REPLIED = 3;
export const CELL_SLOTS = 4;

export const RUNNING = 0n;
export const STOPPED = 1n;
export const REFUSED = 2n;

// The offset from this thread's performance.now() to the shared clock, taken once per thread (both
// clocks are the same monotonic source; only their origins differ). performance.now() is warmed first
// (its first call is slow) and read between two hrtime reads: the offset is off by microseconds, well
// inside the lease's drift allowance.
performance.now();
const offsetUs = (() => {
  const before = process.hrtime.bigint();
  const now = performance.now();
  const after = process.hrtime.bigint();
  return (before + after) / 2000n - BigInt(Math.round(now * 1000));
})();

/** A performance.now() instant of this thread, on the shared clock. */
export function toShared(ms: number): bigint {
  return BigInt(Math.round(ms * 1000)) + offsetUs;
}

/** A shared instant, as this thread's performance.now(). */
export function fromShared(us: bigint): number {
  return Number(us - offsetUs) / 1000;
}

export function newCell(provenSentAt: number): BigInt64Array {
  const cell = new BigInt64Array(new SharedArrayBuffer(CELL_SLOTS * 8));
  Atomics.store(cell, PROVEN, toShared(provenSentAt));
  return cell;
}

/** performance.now() at the sending of the last proven claim or renewal. */
export function provenSentAt(cell: BigInt64Array): number {
  return fromShared(Atomics.load(cell, PROVEN));
}

/** Records a proven renewal sent at `sentAt`, unless a later one is already recorded. */
export function prove(cell: BigInt64Array, sentAt: number): void {
  raise(cell, PROVEN, toShared(sentAt));
}

/** Records when the standby's proven renewal was answered. */
export function proveReply(cell: BigInt64Array, repliedAt: number): void {
  raise(cell, REPLIED, toShared(repliedAt));
}

/** performance.now() when the standby's last proven renewal was answered (-Infinity: none yet). */
export function standbyRepliedAt(cell: BigInt64Array): number {
  const replied = Atomics.load(cell, REPLIED);
  return replied === 0n ? Number.NEGATIVE_INFINITY : fromShared(replied);
}

function raise(cell: BigInt64Array, slot: number, value: bigint): void {
  for (;;) {
    const seen = Atomics.load(cell, slot);
    if (seen >= value || Atomics.compareExchange(cell, slot, seen, value) === seen) return;
  }
}

export function stateOf(cell: BigInt64Array): bigint {
  return Atomics.load(cell, STATE);
}

/** Ends the cell's lease for good: from RUNNING only, so the first ending (stop or refusal) stays. */
export function endCell(cell: BigInt64Array, state: typeof STOPPED | typeof REFUSED): void {
  Atomics.compareExchange(cell, STATE, RUNNING, state);
}

export function countRenewal(cell: BigInt64Array): void {
  Atomics.add(cell, RENEWALS, 1n);
}

export function renewalsOf(cell: BigInt64Array): number {
  return Number(Atomics.load(cell, RENEWALS));
}

export function newHeartbeat(): BigInt64Array {
  const heartbeat = new BigInt64Array(new SharedArrayBuffer(8));
  beat(heartbeat);
  return heartbeat;
}

export function beat(heartbeat: BigInt64Array): void {
  Atomics.store(heartbeat, 0, toShared(performance.now()));
}

/** performance.now() at the leader thread's last sign of life. */
export function lastBeat(heartbeat: BigInt64Array): number {
  return fromShared(Atomics.load(heartbeat, 0));
}
