import type { Flight } from './flight.js';
import type { ChannelWatcher, Subscriptions } from './subscriber.js';
import { delayUntil } from './timeout.js';

/** Why a watch woke up. */
export type Wake =
  /** A message on the key's channel: the state that a script just wrote. */
  | { kind: 'message'; text: string }
  /** The deadline the flight asked for (a lease's end): read the state again. */
  | { kind: 'deadline' }
  /** The subscription is confirmed again after a gap: read the state again, to learn what was missed. */
  | { kind: 'back' }
  /** The subscription did not come back within `redisTimeoutMs`. */
  | { kind: 'lost' }
  /** A caller with an fn joined a flight that only waited: it may take the key over now. */
  | { kind: 'runner' }
  /** Every caller of the flight left. */
  | { kind: 'stopped' };

/**
 * One flight's view of one key's completion channel: subscribe (confirmed), then the flight reads the
 * state, then waits here. Events that arrive between the subscription and the wait are queued, so
 * "subscribe, then read, then wait" can never miss a message. On a quorum it listens on every master
 * and counts as listening while a majority of subscriptions are confirmed.
 *
 * One timer at a time: the flight's deadline, or the bound on a gap in the subscription.
 */
export class KeyWatch {
  private readonly queue: Wake[] = [];
  private wake: (() => void) | undefined;
  private readonly stops: Array<() => void> = [];
  private confirmed = 0;
  private gapTimer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    private readonly majority: number,
    private readonly timeoutMs: number,
  ) {}

  static async open(
    subscriptions: readonly Subscriptions[],
    channel: string,
    sharded: boolean,
    flight: Flight,
    timeoutMs: number,
  ): Promise<KeyWatch> {
    const watch = new KeyWatch(Math.floor(subscriptions.length / 2) + 1, timeoutMs);
    watch.stops.push(flight.onStop(() => watch.push({ kind: 'stopped' })));
    flight.onRunnerJoined(() => watch.push({ kind: 'runner' }));
    watch.stops.push(() => flight.onRunnerJoined(undefined));
    await new Promise<void>((resolve, reject) => {
      let refused = 0;
      for (const subscription of subscriptions) {
        // Counted from its confirmation on; a gap before it is the subscription's own business.
        let subscribed = false;
        let live = false;
        const watcher: ChannelWatcher = {
          message: (text) => watch.push({ kind: 'message', text }),
          gap: () => {
            if (!subscribed || !live) return;
            live = false;
            watch.lost();
          },
          back: () => {
            if (!subscribed || live) return;
            live = true;
            watch.regained();
          },
        };
        subscription.listen(channel, sharded, watcher).then(
          (stop) => {
            if (watch.closed) return stop();
            watch.stops.push(stop);
            subscribed = true;
            live = true;
            if (++watch.confirmed === watch.majority) resolve();
          },
          (error: unknown) => {
            if (++refused === subscriptions.length - watch.majority + 1) {
              watch.close();
              reject(error);
            }
          },
        );
      }
    });
    return watch;
  }

  /** Resolves with the next event, or `deadline` at `until` (a performance.now() instant). */
  next(until: number): Promise<Wake> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise<Wake>((resolve) => {
      const timer =
        until === Number.POSITIVE_INFINITY
          ? undefined
          : setTimeout(() => finish({ kind: 'deadline' }), delayUntil(until)).unref();
      const finish = (event: Wake) => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve(event);
      };
      this.wake = () => finish(this.queue.shift()!);
    });
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.gapTimer);
    for (const stop of this.stops.splice(0)) stop();
  }

  private push(event: Wake): void {
    this.queue.push(event);
    this.wake?.();
  }

  private lost(): void {
    this.confirmed--;
    if (this.confirmed >= this.majority || this.gapTimer) return;
    this.gapTimer = setTimeout(() => {
      this.gapTimer = undefined;
      this.push({ kind: 'lost' });
    }, this.timeoutMs).unref();
  }

  private regained(): void {
    this.confirmed++;
    if (this.confirmed < this.majority || !this.gapTimer) return;
    clearTimeout(this.gapTimer);
    this.gapTimer = undefined;
    this.push({ kind: 'back' });
  }
}
