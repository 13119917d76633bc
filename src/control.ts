import createDebug from 'debug';
import type { ChannelWatcher, Subscriptions } from './subscriber.js';

const debug = createDebug('redis-once:control');

/** A reset announced on the namespace's control channel: the key, and its counter at the reset. */
export interface ResetNotice {
  key: string;
  /** Attempts with a token up to this were ended by the reset; undefined when the sender did not say. */
  fence: number | undefined;
}

export interface ControlEvents {
  reset(notice: ResetNotice): void;
  /** Resets may go unheard from now on, until `listening`. */
  deaf(): void;
  /** Every reset is heard (again), as a majority of masters confirmed. */
  listening(): void;
}

/**
 * The namespace's control channel, where `reset` announces keys: one subscription per instance (per
 * master, on a quorum). It counts as listening while a majority of its subscriptions are confirmed;
 * the memo keeps values only while it listens, so a reset is never missed by a value held in memory.
 */
export class ControlChannel {
  private confirmed = 0;
  private readonly majority: number;
  private ready: Promise<void> | undefined;

  constructor(
    private readonly subscriptions: readonly Subscriptions[],
    private readonly channel: string,
    private readonly events: ControlEvents,
  ) {
    this.majority = Math.floor(subscriptions.length / 2) + 1;
  }

  /** Resolves once listening; a failure is retried by the next call. */
  listen(): Promise<void> {
    this.ready ??= this.subscribe().catch((error: unknown) => {
      this.ready = undefined;
      throw error;
    });
    return this.ready;
  }

  private subscribe(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let refused = 0;
      let settled = false;
      let failed = false;
      // A failed try leaves nothing behind: its confirmed watchers are removed and uncounted, so the
      // next try counts afresh.
      const stops: Array<() => void> = [];
      const undo = () => {
        for (const stop of stops.splice(0)) stop();
        this.confirmed = 0;
      };
      for (const subscription of this.subscriptions) {
        let subscribed = false;
        let live = false;
        const watcher: ChannelWatcher = {
          message: (text) => this.onMessage(text),
          gap: () => {
            if (!subscribed || !live) return;
            live = false;
            if (--this.confirmed === this.majority - 1) this.events.deaf();
          },
          back: () => {
            if (!subscribed || live) return;
            live = true;
            if (++this.confirmed === this.majority) this.events.listening();
          },
        };
        subscription.listen(this.channel, false, watcher).then(
          (stop) => {
            if (failed) return stop(); // this try already failed
            stops.push(stop);
            subscribed = true;
            live = true;
            if (++this.confirmed === this.majority) {
              this.events.listening();
              settled = true;
              resolve();
            }
          },
          (error: unknown) => {
            if (!settled && ++refused === this.subscriptions.length - this.majority + 1) {
              settled = true;
              failed = true;
              undo();
              reject(error);
            }
          },
        );
      }
    });
  }

  private onMessage(text: string): void {
    const notice = parseNotice(text);
    debug('reset of %s (fence %s)', notice.key, notice.fence);
    this.events.reset(notice);
  }
}

/** `["reset", key, fence]` (JSON); a bare key is an older version's notice, without the fence. */
export function parseNotice(text: string): ResetNotice {
  try {
    const parsed: unknown = JSON.parse(text);
    if (Array.isArray(parsed) && parsed[0] === 'reset' && typeof parsed[1] === 'string') {
      const fence = Number(parsed[2]);
      return { key: parsed[1], fence: Number.isSafeInteger(fence) ? fence : undefined };
    }
  } catch {
    // Not JSON: a bare key.
  }
  return { key: text, fence: undefined };
}
