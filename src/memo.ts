import type { Flight } from './flight.js';

/**
 * One flight per key per process, and the values of done keys: the async `once` pattern, with the task
 * memoized, not a boolean.
 *
 * - Concurrent callers of a key share one Flight, so a process makes one coordination with Redis.
 * - A flight that ends with the value is remembered until its done state would expire in Redis
 *   (`doneTtlMs`), a `reset` anywhere forgets it, or it is among the oldest past `maxKeys`. Calls are
 *   then answered from memory, with no Redis I/O.
 * - A failure is never remembered: the next call starts a new flight.
 * - A value is remembered only if the namespace's control channel (where resets are announced) was
 *   listening for the whole flight, from its first request to its end: a reset we could have missed
 *   must not leave a stale value in memory. `lose()` (the control connection dropped) forgets every
 *   value at once; `regain()` (resubscribed, confirmed by Redis) lets flights be remembered again.
 * - A flight that ends removes its map entry only if the entry is still its own.
 */
export class Memo<V> {
  private readonly flights = new Map<string, Flight>();
  private readonly done = new Map<string, { value: V; expiresAt: number }>();
  /** Rises each time the control channel drops or a reset is announced; a flight is remembered only within one epoch. */
  private epoch = 0;
  private listening = false;

  constructor(private readonly maxKeys: number) {}

  /** The remembered value of a done key, or undefined. */
  get(key: string): V | undefined {
    const entry = this.done.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt !== Number.POSITIVE_INFINITY && performance.now() >= entry.expiresAt) {
      this.done.delete(key);
      return undefined;
    }
    return entry.value;
  }

  /** The flight in progress for `key`, if any. */
  flight(key: string): Flight | undefined {
    return this.flights.get(key);
  }

  /** Starts tracking `flight` as the one for its key. */
  add(flight: Flight): void {
    this.flights.set(flight.key, flight);
  }

  /** Stops tracking `flight` (it ended, or every caller left it); a newer flight of the key stays. */
  drop(flight: Flight): void {
    if (this.flights.get(flight.key) === flight) this.flights.delete(flight.key);
  }

  /** Every flight in progress (for `close()`). */
  inFlight(): Flight[] {
    return [...this.flights.values()];
  }

  /**
   * The epoch a flight observes from, taken just before its first request; -1 while the control channel
   * is not listening (such a flight is never remembered).
   */
  observe(): number {
    return this.listening ? this.epoch : -1;
  }

  /**
   * Remembers `value` for `key` until `expiresAt` (a performance.now() instant, or Infinity), if the
   * control channel listened all along since `observedAt` (the flight's `observe()`; -1 never).
   */
  remember(key: string, value: V, expiresAt: number, observedAt: number): void {
    if (observedAt < 0 || observedAt !== this.epoch || !this.listening) return;
    if (this.maxKeys === 0 || expiresAt <= performance.now()) return;
    this.done.delete(key);
    this.done.set(key, { value, expiresAt });
    // A Map iterates in insertion order: the first keys are the oldest. Past the limit, the oldest
    // tenth goes at once: deleting one at a time from the front would walk its tombstones every time.
    if (this.done.size <= this.maxKeys) return;
    let drop = this.done.size - this.maxKeys + Math.floor(this.maxKeys / 10);
    for (const oldest of this.done.keys()) {
      if (drop-- <= 0 || this.done.size <= 1) break;
      this.done.delete(oldest);
    }
  }

  /**
   * A reset of `key` was announced: forget its value, and let no flight in progress remember what it
   * learned before — the key's own, or one every caller left that may still land (resets are rare, so
   * every flight in progress pays with one read, rather than memory risking a stale value).
   */
  forget(key: string): void {
    this.done.delete(key);
    this.epoch++;
  }

  /** The control channel dropped: resets may go unheard, so forget everything until `regain()`. */
  lose(): void {
    this.listening = false;
    this.epoch++;
    this.done.clear();
  }

  /** The control channel listens (again), as Redis confirmed. */
  regain(): void {
    this.listening = true;
  }

  get size(): number {
    return this.done.size;
  }
}
