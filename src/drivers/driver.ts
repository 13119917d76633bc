import type { ScriptRunner } from '../scripts.js';

/**
 * What the core needs of a Redis client, and nothing more. One adapter per client family
 * (`ioredis.ts`, `node-redis.ts`) is the only code that knows a client's API; everything above talks to
 * this interface. Every call is bounded by `redisTimeoutMs` and rejects with our own error classes.
 */
export interface Driver extends ScriptRunner {
  readonly family: 'ioredis' | 'node-redis';
  /** host:port (or the Cluster's seeds), for messages: never a password. */
  readonly label: string;
  readonly isCluster: boolean;
  /** WAIT on the master holding `key`: how many replicas acknowledged our writes so far. */
  waitForReplicas(key: string, replicas: number, timeoutMs: number): Promise<number>;
  /** INFO `section` of the server (of one master, on a Cluster), bounded. Only with a logger given. */
  serverInfo(section: string): Promise<string>;
  /**
   * A new connection for subscribing, owned (and closed) by the caller of this method: to the server,
   * or, on a Cluster, to the master at `master`.
   */
  openSubscriber(events: SubscriberEvents, master?: NodeAddress): SubscriberConnection;
  /** Cluster only: the master serving `slot`; `refresh` asks the Cluster for its slots again first. */
  masterOf(slot: number, refresh: boolean): Promise<NodeAddress>;
  /** Closes what we opened; a client the caller passed is left as it is. */
  close(): Promise<void>;
}

export interface NodeAddress {
  readonly host: string;
  readonly port: number;
}

/** What a subscriber connection reports. The subscription layer above decides what it means. */
export interface SubscriberEvents {
  message(channel: string, message: string): void;
  /** The connection dropped: every subscription on it is gone until made again. */
  down(error: Error | undefined): void;
  /** The connection is up (at first, or again): subscriptions must be made (again). */
  up(): void;
  /** The server ended a subscription by itself (a Cluster slot moved away: an unsolicited SUNSUBSCRIBE). */
  dropped(channel: string): void;
  /**
   * The connection was refused as configured — TLS rejected the server's certificate, Redis the
   * credentials — and will be again: `error` (a RedisUnavailableError with a `reason`) names the
   * cause and what to change. Waits for this connection to come up can end now. It keeps trying in
   * the background, so a fixed setting is picked up (`up` follows then).
   */
  refused?(error: Error): void;
}

export interface SubscriberConnection {
  readonly label: string;
  /** Subscribes, resolving once the server confirmed every channel. */
  subscribe(channels: readonly string[], sharded: boolean): Promise<void>;
  unsubscribe(channels: readonly string[], sharded: boolean): Promise<void>;
  /** PING, allowed on a subscribed connection: resolves when the server answered. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
