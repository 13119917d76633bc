/**
 * The memory a leader's thread and its standby renewer (thread.ts) share, and the one clock they agree
 * on. Each thread's performance.now() has its own origin; process.hrtime is one monotonic clock for
 * the whole process, so shared instants are hrtime microseconds, converted at the edges.
 *
 * A lease's cell (BigInt64, Atomics only):
 *   [0] PROVEN   when the last proven claim or renewal was sent, by either side; only ever raised
 *   [1] STATE    the lease's generation (which lease holds the cell: cells are pooled) and its state,
 *                in one word, so every change the thread makes is one compare-and-swap against both:
 *                RUNNING, STOPPED (fn settled, lost, closed: never renew again), REFUSED (the renewer
 *                was told the lease is not ours); and, while the thread writes to the cell, BUSY (still
 *                running) or STOPPED_BUSY (stopped meanwhile: not to be reused before the thread is done)
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
const BUSY = 3n;
const STOPPED_BUSY = 4n;
const STATE_BITS = 3n;
const STATE_MASK = 7n;

function word(generation: number, state: bigint): bigint {
  return (BigInt(generation) << STATE_BITS) | state;
}

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
  return Number(Atomics.load(cell, STATE) >> STATE_BITS);
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
    const rested =
      this.head < this.freedSlots.length &&
      performance.now() - this.freedAt[this.head]! >= this.quarantineMs &&
      // The thread may still be writing to it (it took the cell BUSY before the lease stopped).
      (Atomics.load(cellAt(this.memory, this.freedSlots[this.head]!), STATE) & STATE_MASK) !== STOPPED_BUSY;
    if (rested) {
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
    // Stopped, under the new generation, first: from here a thread still holding the cell's last lease
    // fails every compare-and-swap on it; then the lease's values; then RUNNING.
    Atomics.store(cell, STATE, word(generation, STOPPED));
    Atomics.store(cell, PROVEN, toShared(provenSentAt));
    Atomics.store(cell, RENEWALS, 0n);
    Atomics.store(cell, REPLIED, 0n);
    Atomics.store(cell, STATE, word(generation, RUNNING));
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

/** The cell's state, its generation aside (BUSY reads as RUNNING for anyone but the thread). */
export function stateOf(cell: BigInt64Array): bigint {
  const state = Atomics.load(cell, STATE) & STATE_MASK;
  if (state === BUSY) return RUNNING;
  return state === STOPPED_BUSY ? STOPPED : state;
}

/**
 * Ends the cell's lease for good, whatever its generation: from RUNNING only, so the first ending (stop
 * or refusal) stays. A stop while the thread writes leaves STOPPED_BUSY, for the thread to clear.
 */
export function endCell(cell: BigInt64Array, state: typeof STOPPED | typeof REFUSED): void {
  for (;;) {
    const seen = Atomics.load(cell, STATE);
    const current = seen & STATE_MASK;
    const next =
      current === RUNNING ? state : current === BUSY && state === STOPPED ? STOPPED_BUSY : undefined;
    if (next === undefined) return;
    const generation = Number(seen >> STATE_BITS);
    if (Atomics.compareExchange(cell, STATE, seen, word(generation, next)) === seen) return;
  }
}

/** The thread: marks the lease of `generation` refused, if it still runs; false when it did not. */
export function refuse(cell: BigInt64Array, generation: number): boolean {
  const running = word(generation, RUNNING);
  return Atomics.compareExchange(cell, STATE, running, word(generation, REFUSED)) === running;
}

/**
 * The thread: runs `write` on the cell while it holds the lease of `generation`, running; the cell is
 * BUSY meanwhile, so it is not handed to another lease. False (nothing written) when it no longer does.
 */
export function whileOurs(cell: BigInt64Array, generation: number, write: () => void): boolean {
  const running = word(generation, RUNNING);
  const busy = word(generation, BUSY);
  if (Atomics.compareExchange(cell, STATE, running, busy) !== running) return false;
  write();
  // Back to RUNNING, or, when the lease stopped meanwhile, to STOPPED: the cell may be reused now.
  if (Atomics.compareExchange(cell, STATE, busy, running) !== busy) {
    Atomics.store(cell, STATE, word(generation, STOPPED));
  }
  return true;
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
