import createDebug from 'debug';
import type { Driver, NodeAddress, SubscriberConnection } from './drivers/driver.js';
import { safeCause } from './drivers/errors.js';
import { RedisUnavailableError } from './errors.js';
import { keySlot } from './slot.js';
import { withTimeout } from './timeout.js';

const debug = createDebug('redis-once:subscriber');

/** What a channel's watcher hears. */
export interface ChannelWatcher {
  message(text: string): void;
  /** The subscription was interrupted (its connection dropped, or its slot moved): messages may be lost. */
  gap(): void;
  /** The subscription is confirmed again, after a gap: read the state again to learn what was missed. */
  back(): void;
}

interface Channel {
  readonly name: string;
  readonly sharded: boolean;
  readonly watchers: Set<ChannelWatcher>;
  conn: Conn | undefined;
  /** True while the server has confirmed the subscription and the connection has not dropped since. */
  confirmed: boolean;
  /** True once a gap was reported to the watchers, until `back`. */
  interrupted: boolean;
  /** True while the subscribe loop runs (one at a time). */
  subscribing: boolean;
  /** Listens waiting for the next confirmation (or the server's refusal). */
  onConfirmed: Array<{ resolve: () => void; reject: (error: Error) => void }>;
  retries: number;
  /** Why the last try failed (BUSY, a dropped connection), for the message if no try succeeds in time. */
  lastError: string | undefined;
}

interface Conn {
  readonly id: string;
  readonly address: NodeAddress | undefined;
  readonly connection: SubscriberConnection;
  readonly channels: Set<Channel>;
  /**
   * Channels nobody watches any more, left while the connection was down: a client that resubscribes
   * by itself (node-redis) brings them back on reconnecting, so they are unsubscribed once it is up.
   */
  readonly forsaken: Map<string, boolean>;
  up: boolean;
  upWaiters: Array<() => void>;
  /** The driver said the connection is refused as configured (TLS, AUTH), until it is up again. */
  refusal: Error | undefined;
  /** performance.now() when the server was last heard on this connection. */
  heardAt: number;
  health: NodeJS.Timeout | undefined;
}

/** The longest a subscribe waits for its connection to come up before routing the channel again. */
const UP_WAIT_MS = 1000;
/** A subscriber connection silent this long is asked for a PING (at least; redisTimeoutMs if longer). */
const HEALTH_MS = 1000;

/**
 * The subscription layer: our own subscriber connections to one Redis (or one per Cluster master), the
 * channels on them, and their health. It is the one place that says a subscription is "back": only
 * once the server confirmed it again — after the connection dropped and reconnected, after a Cluster
 * slot moved (the server's unsolicited SUNSUBSCRIBE), or after a failover moved a slot to another
 * master. Watchers hear `gap` when a subscription is interrupted and `back` once it is confirmed, and
 * read the state again only then: a read before the confirmation could miss a message sent in between.
 *
 * A connection that goes silent (half-open: a NAT or a load balancer dropped it without a reset) is
 * found by a PING when nothing was heard on it for a while, and replaced: its channels have a gap,
 * and are subscribed again on a new connection.
 *
 * Each channel has one subscribe loop at a time, which keeps trying — routing the channel afresh on a
 * Cluster, where a failover may have moved its slot — while anyone watches it. A subscription that is
 * confirmed after nobody waits on it any more is undone, unless a newer watch of the channel stands.
 */
export class Subscriptions {
  private readonly channels = new Map<string, Channel>();
  private readonly conns = new Map<string, Conn>();
  private closed = false;

  constructor(
    private readonly driver: Driver,
    private readonly timeoutMs: number,
  ) {}

  /**
   * Adds `watcher` to `channel`; resolves once Redis confirmed the subscription (so a state read after
   * this cannot miss a message), with the function that removes the watcher. Rejects with
   * RedisUnavailableError when no confirmation comes within `redisTimeoutMs`.
   */
  async listen(name: string, sharded: boolean, watcher: ChannelWatcher): Promise<() => void> {
    if (this.closed) throw new RedisUnavailableError('This Once instance is closed.');
    let channel = this.channels.get(name);
    if (!channel) {
      channel = {
        name,
        sharded,
        watchers: new Set(),
        conn: undefined,
        confirmed: false,
        interrupted: false,
        subscribing: false,
        onConfirmed: [],
        retries: 0,
        lastError: undefined,
      };
      this.channels.set(name, channel);
    }
    const current = channel;
    current.watchers.add(watcher);
    const stop = () => this.unwatch(current, watcher);
    if (current.confirmed) return stop;
    let waiter!: { resolve: () => void; reject: (error: Error) => void };
    const confirmed = new Promise<void>((resolve, reject) => {
      waiter = { resolve, reject };
    });
    current.onConfirmed.push(waiter);
    this.subscribe(current, false);
    try {
      await withTimeout(
        confirmed,
        this.timeoutMs,
        () =>
          new RedisUnavailableError(
            `Redis at ${this.driver.label} did not confirm subscribing to ${name} within ${this.timeoutMs} ms (redisTimeoutMs)` +
              `${current.lastError ? `; last error: ${current.lastError.replace(/\.+$/, '')}` : ''}.`,
          ),
      );
    } catch (error) {
      current.onConfirmed = current.onConfirmed.filter((w) => w !== waiter);
      stop();
      throw error;
    }
    return stop;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.channels.clear();
    const conns = [...this.conns.values()];
    this.conns.clear();
    for (const conn of conns) clearInterval(conn.health);
    await Promise.allSettled(conns.map((conn) => conn.connection.close()));
  }

  private watched(channel: Channel): boolean {
    return !this.closed && this.channels.get(channel.name) === channel;
  }

  private unwatch(channel: Channel, watcher: ChannelWatcher): void {
    if (!channel.watchers.delete(watcher) || channel.watchers.size > 0) return;
    if (this.channels.get(channel.name) !== channel) return;
    this.channels.delete(channel.name);
    const conn = channel.conn;
    conn?.channels.delete(channel);
    if (!conn || this.closed) return;
    this.forsake(conn, channel.name, channel.sharded);
    if (conn.channels.size === 0 && this.driver.isCluster) this.retire(conn);
  }

  /** Unsubscribes a channel nobody watches: now if the connection is up, else once it is back. */
  private forsake(conn: Conn, name: string, sharded: boolean): void {
    // Unsubscribing a subscription still being made is fine: the server answers in order.
    if (!conn.up) {
      conn.forsaken.set(name, sharded);
      return;
    }
    conn.connection.unsubscribe([name], sharded).catch((error: unknown) => {
      debug('unsubscribe %s: %s', name, errorText(error));
    });
  }

  /**
   * The channel's subscribe loop (one at a time): route it (afresh when asked, or after a failure on a
   * Cluster), wait for its connection, subscribe, and tell the watchers once confirmed; on failure, try
   * again after a backoff, for as long as it is watched.
   */
  private subscribe(channel: Channel, reroute: boolean): void {
    if (channel.subscribing || !this.watched(channel)) return;
    channel.subscribing = true;
    const attempt = async () => {
      const conn = await this.route(channel, reroute);
      if (conn.refusal) throw conn.refusal;
      await this.whenUp(conn);
      // Not bounded here: a connection found silent is replaced, and its pending commands rejected.
      await conn.connection.subscribe([channel.name], channel.sharded);
      return conn;
    };
    attempt().then(
      (conn) => {
        channel.subscribing = false;
        if (!this.watched(channel)) {
          // Confirmed after nobody waits on it any more: undo it, unless a newer watch stands.
          if (!this.closed && !this.channels.has(channel.name))
            this.forsake(conn, channel.name, channel.sharded);
          return;
        }
        if (channel.conn !== conn) return this.subscribe(channel, false); // moved meanwhile
        channel.confirmed = true;
        channel.retries = 0;
        channel.lastError = undefined;
        for (const waiter of channel.onConfirmed.splice(0)) waiter.resolve();
        if (channel.interrupted) {
          channel.interrupted = false;
          debug('%s is back on %s', channel.name, conn.id);
          for (const watcher of [...channel.watchers]) watcher.back();
        }
      },
      (error: unknown) => {
        channel.subscribing = false;
        if (!this.watched(channel) || channel.confirmed) return;
        if (isTypedRefusal(error)) {
          // The connection is refused as configured (the driver named why): trying again would not help.
          for (const waiter of channel.onConfirmed.splice(0)) waiter.reject(error);
          return;
        }
        if (isRefusal(error)) {
          // The server said no (an ACL without the channel, say): trying again would not change it.
          const refusal = new RedisUnavailableError(
            `Redis at ${channel.conn?.address ? channel.conn.id : this.driver.label} refused subscribing to ${channel.name}: ${errorText(error)}`,
            { cause: safeCause(error) },
          );
          for (const waiter of channel.onConfirmed.splice(0)) waiter.reject(refusal);
          return;
        }
        const delay = Math.min(50 * 2 ** channel.retries++, 2000);
        channel.lastError = errorText(error);
        debug('subscribing to %s failed (%s); again in %d ms', channel.name, errorText(error), delay);
        setTimeout(() => this.subscribe(channel, this.driver.isCluster), delay).unref();
      },
    );
  }

  /** The connection `channel` belongs on: its slot's master on a Cluster, else the one connection. */
  private async route(channel: Channel, refresh: boolean): Promise<Conn> {
    const address = this.driver.isCluster
      ? await this.driver.masterOf(keySlot(channel.name), refresh)
      : undefined;
    // Its watch may have ended meanwhile: a channel nobody watches must not hold a connection open.
    if (!this.watched(channel)) throw new Error(`${channel.name} is no longer watched`);
    const conn = this.conn(address);
    const previous = channel.conn;
    if (previous !== conn) {
      previous?.channels.delete(channel);
      channel.conn = conn;
      conn.channels.add(channel);
      if (previous && previous.channels.size === 0) this.retire(previous);
    }
    return conn;
  }

  private conn(address: NodeAddress | undefined): Conn {
    const id = address ? `${address.host}:${address.port}` : 'main';
    const existing = this.conns.get(id);
    if (existing) return existing;
    if (this.closed) throw new RedisUnavailableError('This Once instance is closed.');
    const conn: Conn = {
      id,
      address,
      channels: new Set(),
      forsaken: new Map(),
      up: false,
      upWaiters: [],
      refusal: undefined,
      heardAt: performance.now(),
      health: undefined,
      connection: this.driver.openSubscriber(
        {
          message: (name, text) => {
            conn.heardAt = performance.now();
            const channel = this.channels.get(name);
            if (channel?.conn === conn) for (const watcher of [...channel.watchers]) watcher.message(text);
          },
          up: () => {
            conn.up = true;
            conn.refusal = undefined;
            conn.heardAt = performance.now();
            for (const wake of conn.upWaiters.splice(0)) wake();
            for (const [name, sharded] of conn.forsaken) {
              if (this.channels.get(name)?.conn !== conn) this.forsake(conn, name, sharded);
            }
            conn.forsaken.clear();
            // Subscriptions are ours to make again: the client does not resubscribe for us.
            for (const channel of [...conn.channels]) if (!channel.confirmed) this.subscribe(channel, false);
          },
          down: (error) => {
            const wasUp = conn.up;
            conn.up = false;
            if (wasUp) debug('subscriber %s dropped: %s', id, error ? error.message : 'closed');
            for (const channel of [...conn.channels]) {
              this.interrupt(channel);
              // On a Cluster the slot may have moved to another master (a failover): route again.
              if (this.driver.isCluster) this.subscribe(channel, true);
            }
          },
          refused: (error) => {
            // Every wait for this connection ends now, with the driver's typed error; a later listen
            // fails at once until the connection is up again.
            conn.refusal = error;
            for (const channel of [...conn.channels]) {
              if (channel.confirmed) continue;
              for (const waiter of channel.onConfirmed.splice(0)) waiter.reject(error);
            }
          },
          dropped: (name) => {
            const channel = this.channels.get(name);
            if (channel?.conn !== conn) return;
            debug('%s was unsubscribed by %s (its slot moved)', name, id);
            this.interrupt(channel);
            this.subscribe(channel, true);
          },
        },
        address,
      ),
    };
    this.conns.set(id, conn);
    const healthMs = Math.max(HEALTH_MS, this.timeoutMs);
    conn.health = setInterval(() => void this.checkHealth(conn, healthMs), healthMs).unref();
    return conn;
  }

  /** A connection silent for `healthMs` must answer a PING within `redisTimeoutMs`, or is replaced. */
  private async checkHealth(conn: Conn, healthMs: number): Promise<void> {
    if (!conn.up || conn.channels.size === 0 || performance.now() - conn.heardAt < healthMs) return;
    try {
      await withTimeout(conn.connection.ping(), this.timeoutMs, () => new Error('no PONG'));
      conn.heardAt = performance.now();
    } catch (error) {
      if (this.conns.get(conn.id) !== conn || !conn.up) return;
      debug('subscriber %s did not answer a PING (%s); replacing it', conn.id, errorText(error));
      this.replace(conn);
    }
  }

  /** Swaps a silent connection for a new one: its channels have a gap, and are subscribed there. */
  private replace(conn: Conn): void {
    const channels = [...conn.channels];
    conn.channels.clear();
    this.retire(conn);
    const fresh = this.conn(conn.address);
    for (const channel of channels) {
      channel.conn = fresh;
      fresh.channels.add(channel);
      this.interrupt(channel);
      this.subscribe(channel, false);
    }
  }

  private interrupt(channel: Channel): void {
    channel.confirmed = false;
    if (channel.interrupted) return;
    channel.interrupted = true;
    for (const watcher of [...channel.watchers]) watcher.gap();
  }

  /** Resolves once `conn` is up; rejects if it is not within a while (the loop then routes again). */
  private whenUp(conn: Conn): Promise<void> {
    if (conn.up) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const wake = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(
        () => {
          conn.upWaiters = conn.upWaiters.filter((w) => w !== wake);
          reject(new RedisUnavailableError(`The subscriber connection to ${conn.id} is not up.`));
        },
        Math.min(this.timeoutMs, UP_WAIT_MS),
      ).unref();
      conn.upWaiters.push(wake);
    });
  }

  /** A Cluster master's connection with no channels left: close it. */
  private retire(conn: Conn): void {
    clearInterval(conn.health);
    if (this.conns.get(conn.id) !== conn) return;
    this.conns.delete(conn.id);
    conn.connection.close().catch(() => {});
  }
}

/** The driver's typed refusal (TLS, AUTH): a RedisUnavailableError with a `reason`. */
function isTypedRefusal(error: unknown): error is RedisUnavailableError {
  return error instanceof RedisUnavailableError && error.reason !== undefined;
}

/** A reply the server gave (not a connection problem), that no retry would change. */
function isRefusal(error: unknown): boolean {
  return error instanceof Error && /^(NOPERM|ERR|NOAUTH|WRONGPASS|WRONGTYPE)\b/.test(error.message);
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
