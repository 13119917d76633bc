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
 *   [4] GEN      which lease holds the cell now: cells are pooled (CellPool), and the thread acts on
 *                a cell only for the generation it was told of
 * The heartbeat (one per renewer): [0] when the leader's thread last showed signs of life.
 */
const PROVEN = 0;
const STATE = 1;
const RENEWALS = 2;
const REPLIED = 3;
const GEN = 4;
export const CELL_SLOTS = 5;

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

/** A cell of its own (tests); the standby renewer takes its cells from a CellPool. */
export function newCell(provenSentAt: number): BigInt64Array {
  const cell = new BigInt64Array(new SharedArrayBuffer(CELL_SLOTS * 8));
  Atomics.store(cell, PROVEN, toShared(provenSentAt));
  return cell;
}

/** Cell `slot` of a pool's memory, as both threads view it. */
export function cellAt(memory: SharedArrayBuffer, slot: number): BigInt64Array {
  return new BigInt64Array(memory, slot * CELL_SLOTS * 8, CELL_SLOTS);
}

export function generationOf(cell: BigInt64Array): number {
  return Number(Atomics.load(cell, GEN));
}

/**
 * The cells of one standby renewer, in one piece of shared memory handed to its thread once: a lead
 * allocates nothing shared and transfers nothing. A freed cell is taken again only after `quarantineMs`
 * (far longer than the thread can be between checking a cell's generation and writing to it), and with
 * a new generation, so the thread never writes for one lease into another's cell.
 */
export class CellPool {
  readonly memory: SharedArrayBuffer;
  // The freed cells, oldest first: a queue over two arrays (head moves, nothing is shifted).
  private readonly freedSlots: number[] = [];
  private readonly freedAt: number[] = [];
  private head = 0;
  private used = 0;
  private generation = 0;

  constructor(
    private readonly size: number,
    private readonly quarantineMs: number,
  ) {
    this.memory = new SharedArrayBuffer(size * CELL_SLOTS * 8);
  }

  /** A cell for a lease proven from `provenSentAt`, RUNNING; undefined when every cell is taken. */
  take(provenSentAt: number): { slot: number; generation: number; cell: BigInt64Array } | undefined {
    let slot: number;
    if (
      this.head < this.freedSlots.length &&
      performance.now() - this.freedAt[this.head]! >= this.quarantineMs
    ) {
      slot = this.freedSlots[this.head++]!;
      if (this.head > 1024 && this.head * 2 > this.freedSlots.length) {
        this.freedSlots.splice(0, this.head);
        this.freedAt.splice(0, this.head);
        this.head = 0;
      }
    } else if (this.used < this.size) slot = this.used++;
    else return undefined;
    // Kept to 32 bits: the thread is told it in a Uint32 (ring.ts).
    this.generation = (this.generation + 1) >>> 0;
    const generation = this.generation;
    const cell = cellAt(this.memory, slot);
    // The generation first: from here a thread still holding the cell's last lease leaves it alone.
    Atomics.store(cell, GEN, BigInt(generation));
    Atomics.store(cell, PROVEN, toShared(provenSentAt));
    Atomics.store(cell, RENEWALS, 0n);
    Atomics.store(cell, REPLIED, 0n);
    Atomics.store(cell, STATE, RUNNING);
    return { slot, generation, cell };
  }

  /** The cell's lease ended (its state is no longer RUNNING): the cell may serve another, later. */
  give(slot: number): void {
    this.freedSlots.push(slot);
    this.freedAt.push(performance.now());
  }
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
