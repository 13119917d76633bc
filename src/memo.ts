/**
 * One promise per key per process: the async `once` pattern, with the task memoized, not a boolean.
 *
 * - Concurrent callers of a key share one flight, so a process makes one coordination with Redis.
 * - A flight that succeeds is kept, until its done state would expire in Redis (`doneTtlMs`), a
 *   `reset` anywhere drops it, or it is among the oldest when more than `maxKeys` are kept. After that,
 *   calls are answered from memory with no Redis I/O.
 * - A flight that fails is never kept: the next call starts a new one.
 * - Settling a flight touches the map only if the entry is still that flight's (a reset may have
 *   dropped it, and a newer flight may stand there now).
 */
export class Memo<R> {
  private readonly flights = new Map<string, Flight<R>>();
  private readonly done = new Map<string, { result: R; expiresAt: number }>();

  constructor(private readonly maxKeys: number) {}

  /** The remembered result of a done key, or undefined. */
  get(key: string): R | undefined {
    const entry = this.done.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt !== Number.POSITIVE_INFINITY && performance.now() >= entry.expiresAt) {
      this.done.delete(key);
      return undefined;
    }
    return entry.result;
  }

  /** The flight in progress for `key`, or a new one started with `start`. */
  join(
    key: string,
    start: (stop: AbortSignal, flight: Flight<R>) => Promise<R>,
    expiresAtOf: (result: R) => number,
  ): Flight<R> {
    const existing = this.flights.get(key);
    if (existing) return existing;
    const flight = new Flight<R>(start);
    this.flights.set(key, flight);
    // A follower flight that every caller left is winding down: later callers start a new one. A
    // flight whose fn is running here stays joinable: its value is on its way.
    flight.stopSignal.addEventListener('abort', () => {
      if (!flight.leading && this.flights.get(key) === flight) this.flights.delete(key);
    });
    flight.promise.then(
      (result) => {
        if (this.flights.get(key) !== flight) return; // dropped by a reset, or stopped, while in flight
        this.flights.delete(key);
        this.remember(key, result, expiresAtOf(result));
      },
      () => {
        if (this.flights.get(key) === flight) this.flights.delete(key);
      },
    );
    return flight;
  }

  /** Forgets `key` (a reset happened): later calls go back to Redis. A flight in progress goes on. */
  forget(key: string): void {
    this.done.delete(key);
    this.flights.delete(key);
  }

  /** Forgets every done key (flights in progress go on). */
  forgetDone(): void {
    this.done.clear();
  }

  /** Forgets every key and stops every follower flight. */
  clear(reason: unknown): void {
    for (const flight of this.flights.values()) flight.stop(reason);
    this.flights.clear();
    this.done.clear();
  }

  get size(): number {
    return this.done.size;
  }

  /** `expiresAt` is a performance.now() instant, or Infinity. */
  private remember(key: string, result: R, expiresAt: number): void {
    if (expiresAt <= performance.now() || this.maxKeys === 0) return;
    this.done.delete(key);
    this.done.set(key, { result, expiresAt });
    // Map iterates in insertion order: the first keys are the oldest.
    for (const oldest of this.done.keys()) {
      if (this.done.size <= this.maxKeys) break;
      this.done.delete(oldest);
    }
  }
}

/**
 * One coordination of one key in this process, shared by every concurrent caller. When the last caller
 * stops waiting (its timeout or signal), the flight's `stop` signal aborts, so a follower flight ends
 * its wait too; a running fn is never stopped by it.
 */
export class Flight<R> {
  readonly promise: Promise<R>;
  private readonly stopper = new AbortController();
  private callers = 0;
  private settled = false;
  private leadingListeners: Array<() => void> = [];
  private leadingNow = false;

  constructor(start: (stop: AbortSignal, flight: Flight<R>) => Promise<R>) {
    this.promise = start(this.stopper.signal, this);
    const settle = () => {
      this.settled = true;
    };
    this.promise.then(settle, settle);
  }

  /** Counts a caller in; returns the function that counts it out. */
  attach(): () => void {
    this.callers++;
    let attached = true;
    return () => {
      if (!attached) return;
      attached = false;
      this.callers--;
      if (this.callers === 0 && !this.settled) this.stop(new Error('every caller stopped waiting'));
    };
  }

  /** Aborts when the flight is stopped (every caller left, or the instance closed). */
  get stopSignal(): AbortSignal {
    return this.stopper.signal;
  }

  stop(reason: unknown): void {
    if (!this.stopper.signal.aborted) this.stopper.abort(reason);
  }

  /** True once this process leads the attempt (its fn is running). */
  get leading(): boolean {
    return this.leadingNow;
  }

  markLeading(): void {
    this.leadingNow = true;
    for (const listener of this.leadingListeners.splice(0)) listener();
  }

  onLeading(listener: () => void): void {
    if (this.leadingNow) listener();
    else this.leadingListeners.push(listener);
  }
}
