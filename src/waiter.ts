import createDebug from 'debug';
import { RedisUnavailableError } from './errors.js';
import { quitOrDisconnect, type RedisClient, type RedisNode, waitForReady } from './redis-node.js';
import { withTimeout } from './timeout.js';

const debug = createDebug('redis-once:waiter');

type Listener = (message: string) => void;

/**
 * One subscriber connection per Redis node and Once instance, multiplexing every key's completion
 * channel and the namespace's control channel. Followers never poll: they wait here for a message,
 * or for the lease deadline they were told.
 *
 * After the connection drops and comes back, ioredis subscribes again by itself, but messages sent in
 * between are lost; so every watcher is woken to re-read the state (`onReconnect`).
 */
export class Subscriber {
  private connection: RedisClient | undefined;
  private readonly channels = new Map<string, { listeners: Set<Listener>; ready: Promise<void> }>();
  private readonly reconnectListeners = new Set<(event: ConnectionEvent) => void>();
  private closed = false;

  constructor(
    private readonly node: RedisNode,
    private readonly timeoutMs: number,
  ) {}

  /**
   * Adds `listener` to `channel`; resolves once Redis confirmed the subscription, so a state read after
   * this cannot miss a message. Returns the function that removes it.
   */
  async listen(channel: string, listener: Listener, sharded: boolean): Promise<() => void> {
    let entry = this.channels.get(channel);
    if (!entry) {
      const connection = this.connect();
      const ready = this.bounded(
        `subscribing to ${channel}`,
        (async () => {
          await waitForReady(connection, performance.now() + this.timeoutMs);
          await (sharded ? connection.ssubscribe(channel) : connection.subscribe(channel));
        })(),
      );
      entry = { listeners: new Set(), ready };
      this.channels.set(channel, entry);
      ready.catch(() => {
        if (this.channels.get(channel) === entry) this.channels.delete(channel);
      });
    }
    const current = entry;
    current.listeners.add(listener);
    try {
      await current.ready;
    } catch (error) {
      current.listeners.delete(listener);
      throw error;
    }
    return () => {
      current.listeners.delete(listener);
      // Only the entry this listener joined; a newer subscription to the channel is not ours to end.
      if (current.listeners.size > 0 || this.channels.get(channel) !== current) return;
      this.channels.delete(channel);
      const connection = this.connection;
      if (!connection || this.closed) return;
      (sharded ? connection.sunsubscribe(channel) : connection.unsubscribe(channel)).catch((error: unknown) =>
        debug('unsubscribe %s: %s', channel, error instanceof Error ? error.message : error),
      );
    };
  }

  /** `callback` runs when the connection drops and when it is back: messages may have been missed. */
  onReconnect(callback: (event: ConnectionEvent) => void): () => void {
    this.reconnectListeners.add(callback);
    return () => this.reconnectListeners.delete(callback);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.channels.clear();
    this.reconnectListeners.clear();
    if (this.connection) await quitOrDisconnect(this.connection);
  }

  private connect(): RedisClient {
    if (this.closed) throw new RedisUnavailableError('This Once instance is closed.');
    if (this.connection) return this.connection;
    const connection = this.node.duplicate();
    const deliver = (channel: string, message: string) => {
      const entry = this.channels.get(channel);
      if (!entry) return;
      for (const listener of [...entry.listeners]) listener(message);
    };
    connection.on('message', deliver);
    connection.on('smessage', deliver);
    // Wake every watcher when the connection drops (its re-read then either finds Redis back within
    // redisTimeoutMs or fails with RedisUnavailableError, instead of waiting out a lease), and again
    // when it is back (messages sent meanwhile were lost).
    // Once per drop, not once per failed reconnect attempt: `up` is true only while connected.
    let up = false;
    let everUp = false;
    const wake = (event: ConnectionEvent) => {
      debug(
        'subscriber to %s %s; waking %d listener(s)',
        this.node.label,
        event,
        this.reconnectListeners.size,
      );
      for (const callback of [...this.reconnectListeners]) callback(event);
    };
    connection.on('ready', () => {
      if (everUp) wake('back');
      up = true;
      everUp = true;
    });
    connection.on('close', () => {
      if (up && !this.closed) wake('lost');
      up = false;
    });
    connection.connect().catch(() => {});
    this.connection = connection;
    return connection;
  }

  private async bounded<T>(what: string, promise: Promise<T>): Promise<T> {
    try {
      return await withTimeout(
        promise,
        this.timeoutMs,
        () =>
          new RedisUnavailableError(
            `Redis at ${this.node.label} did not confirm ${what} within ${this.timeoutMs} ms (redisTimeoutMs).`,
          ),
      );
    } catch (error) {
      if (error instanceof RedisUnavailableError) throw error;
      throw new RedisUnavailableError(`Redis at ${this.node.label} refused ${what}.`, { cause: error });
    }
  }
}

/** What happened to a subscriber connection: it dropped, or it is back after a drop. */
export type ConnectionEvent = 'lost' | 'back';

/**
 * Listens on `channel` on every node and resolves once a majority confirmed: a completion or a reset
 * counts only when written to a majority, and any two majorities share a node. A node that confirms
 * later joins then; one that is down is not waited for. Resolves with the function that stops them all
 * (now and later ones); rejects once a majority can no longer confirm.
 */
export function listenOnMajority(
  subscribers: readonly Subscriber[],
  channel: string,
  listener: Listener,
  sharded: boolean,
): Promise<() => void> {
  const majority = Math.floor(subscribers.length / 2) + 1;
  const stops: Array<() => void> = [];
  let stopped = false;
  const stopAll = () => {
    stopped = true;
    for (const stop of stops.splice(0)) stop();
  };
  return new Promise((resolve, reject) => {
    let confirmed = 0;
    let refused = 0;
    for (const subscriber of subscribers) {
      subscriber.listen(channel, listener, sharded).then(
        (stop) => {
          if (stopped) return stop();
          stops.push(stop);
          if (++confirmed === majority) resolve(stopAll);
        },
        (error: unknown) => {
          if (++refused === subscribers.length - majority + 1) {
            stopAll();
            reject(error);
          }
        },
      );
    }
  });
}

/** Why a watch woke up. */
export type Wake = { kind: 'message'; message: string } | { kind: 'deadline' } | { kind: 'connection' };

/**
 * One flight's view of one key's completion channel, on every node: buffers what arrives between the
 * subscription and the wait, so that "subscribe, then read, then wait" can never miss a message.
 */
export class KeyWatch {
  private readonly queue: Wake[] = [];
  private wake: (() => void) | undefined;
  private readonly cleanups: Array<() => void> = [];

  private constructor() {}

  static async open(
    subscribers: readonly Subscriber[],
    channel: string,
    sharded: boolean,
  ): Promise<KeyWatch> {
    const watch = new KeyWatch();
    const push = (event: Wake) => {
      watch.queue.push(event);
      watch.wake?.();
    };
    for (const subscriber of subscribers)
      watch.cleanups.push(subscriber.onReconnect(() => push({ kind: 'connection' })));
    try {
      const stop = await listenOnMajority(
        subscribers,
        channel,
        (message) => push({ kind: 'message', message }),
        sharded,
      );
      watch.cleanups.push(stop);
    } catch (error) {
      watch.close();
      throw error;
    }
    return watch;
  }

  /** Resolves with the next event, or `deadline` at `until` (a performance.now() instant), or on abort. */
  next(until: number, signal: AbortSignal): Promise<Wake> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    // An abort that came before this wait would never fire its listener.
    if (signal.aborted) return Promise.resolve({ kind: 'deadline' });
    return new Promise<Wake>((resolve) => {
      const finish = (event: Wake) => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.wake = undefined;
        resolve(event);
      };
      const onAbort = () => finish({ kind: 'deadline' });
      const timer = setTimeout(() => finish({ kind: 'deadline' }), Math.max(0, until - performance.now()));
      timer.unref();
      signal.addEventListener('abort', onAbort, { once: true });
      this.wake = () => finish(this.queue.shift() ?? { kind: 'deadline' });
    });
  }

  close(): void {
    for (const cleanup of this.cleanups.splice(0)) cleanup();
  }
}
