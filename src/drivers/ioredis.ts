import createDebug from 'debug';
import type { Cluster, Redis } from 'ioredis';
import { RedisUnavailableError } from '../errors.js';
import type { LuaScript } from '../scripts.js';
import { keySlot } from '../slot.js';
import type { Driver, NodeAddress, SubscriberConnection, SubscriberEvents } from './driver.js';
import { bounded } from './errors.js';
import { raceRefusal, refusedError, refusedSubscription } from './refusal.js';
import { plainReply, ScriptCalls } from './script-calls.js';

const debug = createDebug('redis-once:ioredis');

/** An ioredis `Redis` or `Cluster`, of version 5 or 6, as the driver uses it (ioredis 6's types). */
export type IoredisClient = Redis | Cluster;

/**
 * What a caller's ioredis client must look like, by shape: so a client of any ioredis 5 or 6 copy —
 * whose class is not ours, and whose declarations differ by version — is assignable as it is.
 */
export interface IoredisLike {
  readonly status: string;
  readonly options: object;
  // biome-ignore lint/suspicious/noExplicitAny: ioredis' own overloads differ by version
  call(command: string, ...args: any[]): Promise<unknown>;
  duplicate(...args: never[]): unknown;
  // biome-ignore lint/suspicious/noExplicitAny: ioredis declares its listeners' arguments as any[]
  on(event: string | symbol, listener: (...args: any[]) => void): unknown;
}

/**
 * The adapter for ioredis 5 and 6 (RESP2 or RESP3), `Redis` and `Cluster`. A client the caller passed
 * is used as it is, and never closed or reconfigured; one we opened (from a URL) fails fast and is
 * closed by `close()`. Subscriber connections are always our own duplicates, with ioredis'
 * auto-resubscribe off: the subscription layer resubscribes, and says "back" only once confirmed.
 */
export class IoredisDriver implements Driver {
  readonly family = 'ioredis';
  readonly isCluster: boolean;
  private readonly calls: ScriptCalls;
  /** The client's latest connection error (until it is ready again): why a call was not answered. */
  lastError: Error | undefined;
  /**
   * A connection of ours refused as configured (TLS, AUTH), until it is ready again: calls fail with
   * it at once rather than wait for the bound. It keeps reconnecting, so a fixed setting (a password
   * rotated back) is picked up.
   */
  private refusal: Error | undefined;
  private readiness: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly client: IoredisClient,
    private readonly owned: boolean,
    private readonly timeoutMs: number,
    readonly label: string,
  ) {
    this.isCluster = (client as { isCluster?: boolean }).isCluster === true;
    if (owned) {
      // Without a listener ioredis prints "Unhandled error event"; we report through our own errors.
      client.on('error', (error: Error) => {
        this.lastError = error;
        this.refusal = refusedError(error, label) ?? this.refusal;
        debug('%s: %s', label, error.message);
      });
      client.on('ready', () => {
        this.lastError = undefined;
        this.refusal = undefined;
      });
    }
    this.calls = new ScriptCalls(
      (command, args) => this.send(command, args),
      // A Cluster's script caches are per master; EVAL routes by key like EVALSHA does.
      this.isCluster,
    );
  }

  evalScript(script: LuaScript, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    if (this.client.status === 'ready') {
      return bounded(this.calls.eval(script, keys, args), this.label, script.name, this.timeoutMs, this).then(
        plainReply,
      );
    }
    let call = this.ready().then(() => this.calls.eval(script, keys, args));
    // A caller's client queues our command while it cannot connect: hear its refusal meanwhile.
    if (!this.owned) call = raceRefusal(call, this.client, this.label, `the ${script.name} script`);
    return bounded(call, this.label, script.name, this.timeoutMs, this).then(plainReply);
  }

  waitForReplicas(key: string, replicas: number, timeoutMs: number): Promise<number> {
    const call = (async () => {
      const target = this.isCluster ? await this.masterClient(keySlot(key)) : (this.client as Redis);
      return Number(await target.call('WAIT', String(replicas), String(timeoutMs)));
    })();
    return bounded(call, this.label, 'WAIT', this.timeoutMs);
  }

  serverInfo(section: string): Promise<string> {
    const call = (async () => {
      await this.ready();
      return String(await this.client.call('INFO', section));
    })();
    return bounded(call, this.label, 'INFO', this.timeoutMs, this);
  }

  openSubscriber(events: SubscriberEvents, master?: NodeAddress): SubscriberConnection {
    const overrides = {
      // The subscription layer resubscribes, and knows when the server confirmed it.
      autoResubscribe: false,
      enableOfflineQueue: false,
      lazyConnect: true,
      // No ready check (INFO) and no client name (CLIENT SETINFO): fewer commands per process.
      enableReadyCheck: false,
      disableClientInfo: true,
      connectTimeout: this.timeoutMs,
      disconnectTimeout: 200,
    };
    let connection: Redis;
    if (this.isCluster) {
      const cluster = this.client as Cluster;
      const known = master ? cluster.nodes('master').find((node) => matches(node, master)) : undefined;
      const base = known ?? cluster.nodes()[0];
      if (!base) throw new RedisUnavailableError(`The Cluster at ${this.label} has no known node yet.`);
      connection = base.duplicate({
        ...overrides,
        ...(master ? { host: master.host, port: master.port } : {}),
        // A Cluster's own node connections never reconnect (the Cluster replaces them); ours must.
        retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
        readOnly: false,
      });
    } else {
      connection = (this.client as Redis).duplicate(overrides);
    }
    return new IoredisSubscriber(connection, events, master ? `${master.host}:${master.port}` : this.label);
  }

  async masterOf(slot: number, refresh: boolean): Promise<NodeAddress> {
    const cluster = this.client as Cluster;
    // The slots are known once the Cluster is ready (ours connects on first use; a caller's, by itself).
    await bounded(this.ready(true), this.label, 'a connection attempt', this.timeoutMs, this);
    if (refresh || !cluster.slots[slot]?.[0]) {
      const refreshed = new Promise<void>((resolve, reject) =>
        cluster.refreshSlotsCache((error) => (error ? reject(error) : resolve())),
      );
      await bounded(refreshed, this.label, 'refreshing the slots', this.timeoutMs);
    }
    const id = cluster.slots[slot]?.[0];
    if (!id)
      throw new RedisUnavailableError(`No master of the Cluster at ${this.label} serves slot ${slot}.`);
    return parseAddress(id);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.owned) await quitOrDisconnect(this.client);
  }

  private send(command: string, args: readonly string[]): Promise<unknown> {
    // ioredis flattens an array argument into the command's arguments.
    return this.client.call(command, args as string[]);
  }

  /**
   * An owned connection is connected on first use; a caller's client is used as it is (its offline
   * queue, if any, holds our commands), unless `evenIfCallers` (we need a Cluster's slots).
   */
  private async ready(evenIfCallers = false): Promise<void> {
    if (this.client.status === 'ready') return;
    // A caller's client without an offline queue would refuse a command sent before it is ready.
    const queues = (this.client.options as { enableOfflineQueue?: boolean }).enableOfflineQueue !== false;
    if (!this.owned && !evenIfCallers && queues) return;
    if (this.closed || this.client.status === 'end') {
      throw new RedisUnavailableError(`The connection to ${this.label} is closed.`);
    }
    // Refused already (and not ready since): the next try would be refused the same way.
    if (this.refusal) throw this.refusal;
    if (this.owned && this.client.status === 'wait') this.client.connect().catch(() => {});
    // One wait for 'ready' shared by every call, with no deadline of its own: each call waits within
    // its own bound (the `bounded` around it), not the first caller's. A refusal ends it at once.
    this.readiness ??= new Promise<void>((resolve, reject) => {
      const settle = (error?: Error) => {
        this.client.off('ready', onReady);
        this.client.off('end', onEnd);
        this.client.off('error', onError);
        this.readiness = undefined;
        if (error) reject(error);
        else resolve();
      };
      const onReady = () => settle();
      const onEnd = () => settle(new RedisUnavailableError(`The connection to ${this.label} was closed.`));
      const onError = (error: unknown) => {
        const refused = refusedError(error, this.label, 'a connection attempt');
        if (refused) settle(refused);
      };
      this.client.on('ready', onReady);
      this.client.on('end', onEnd);
      this.client.on('error', onError);
    });
    // Every caller may have given up by the time it settles.
    this.readiness.catch(() => {});
    await this.readiness;
  }

  private async masterClient(slot: number): Promise<Redis> {
    const address = await this.masterOf(slot, false);
    const node = (this.client as Cluster).nodes('master').find((n) => matches(n, address));
    if (!node)
      throw new RedisUnavailableError(`The master ${address.host}:${address.port} is not connected.`);
    return node;
  }
}

class IoredisSubscriber implements SubscriberConnection {
  private up = false;
  private closed = false;

  constructor(
    private readonly connection: Redis,
    events: SubscriberEvents,
    readonly label: string,
  ) {
    connection.on('message', (channel: string, message: string) => events.message(channel, message));
    connection.on('smessage', (channel: string, message: string) => events.message(channel, message));
    connection.on('ready', () => {
      this.up = true;
      events.up();
    });
    connection.on('close', () => {
      if (!this.up) return;
      this.up = false;
      if (!this.closed) events.down(undefined);
    });
    // ioredis 6 says "moved" when the server unsubscribed a sharded channel by itself (its slot moved);
    // ioredis 5 reports it as a command queue error and may pair it with the wrong command. Either way
    // the connection's view of its subscriptions is unsure: reconnect, and resubscribe everything.
    const reconnect = () => {
      if (this.closed) return;
      debug('%s: a subscription was ended by the server; reconnecting', label);
      connection.disconnect(true);
    };
    connection.on('moved', reconnect);
    connection.on('error', (error: Error) => {
      debug('%s subscriber: %s', label, error.message);
      if (error.message.startsWith('Command queue state error')) reconnect();
      const refused = refusedError(error, label, 'a connection attempt');
      if (refused) events.refused?.(refused);
    });
    connection.connect().catch(() => {});
  }

  async subscribe(channels: readonly string[], sharded: boolean): Promise<void> {
    try {
      await (sharded ? this.connection.ssubscribe(...channels) : this.connection.subscribe(...channels));
    } catch (error) {
      throw refusedSubscription(error, channels, sharded);
    }
  }

  async unsubscribe(channels: readonly string[], sharded: boolean): Promise<void> {
    await (sharded ? this.connection.sunsubscribe(...channels) : this.connection.unsubscribe(...channels));
  }

  async ping(): Promise<void> {
    await this.connection.ping();
  }

  async close(): Promise<void> {
    this.closed = true;
    await quitOrDisconnect(this.connection);
  }
}

function matches(node: Redis, address: NodeAddress): boolean {
  return node.options.host === address.host && node.options.port === address.port;
}

function parseAddress(id: string): NodeAddress {
  const colon = id.lastIndexOf(':');
  return { host: id.slice(0, colon), port: Number(id.slice(colon + 1)) };
}

/**
 * A TLS socket ended in mid-handshake can report two errors — the certificate refused, then the
 * server's alert about the half-closed handshake — and ioredis listens for one only (`once`): the
 * second would be an uncaught exception, ending the process. Ours are closing, so later errors mean
 * nothing: listen for them.
 */
function absorbLateErrors(client: IoredisClient): void {
  const stream = (client as { stream?: { destroyed?: boolean; on?(event: string, f: () => void): unknown } })
    .stream;
  if (stream && !stream.destroyed && typeof stream.on === 'function') stream.on('error', () => {});
}

/** QUIT when connected (pending replies still arrive), bounded; otherwise just disconnect. */
export async function quitOrDisconnect(client: IoredisClient): Promise<void> {
  if (client.status === 'end') return;
  if (client.status !== 'ready') {
    absorbLateErrors(client);
    client.disconnect();
    if (client.status === 'reconnecting') {
      // ioredis 6.0.0 can leave a client disconnected between reconnect attempts 'reconnecting' forever,
      // with a reconnect timer pending (redis/ioredis#2169); a connect() cancelled at once ends it.
      client.connect().catch(() => {});
      client.disconnect();
    }
    return;
  }
  const timer = setTimeout(() => client.disconnect(), 1000).unref();
  try {
    await client.quit();
  } catch {
    client.disconnect();
  } finally {
    clearTimeout(timer);
  }
}
