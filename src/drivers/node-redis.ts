import createDebug from 'debug';
import { RedisUnavailableError } from '../errors.js';
import type { LuaScript } from '../scripts.js';
import { keySlot } from '../slot.js';
import type { Driver, NodeAddress, SubscriberConnection, SubscriberEvents } from './driver.js';
import { bounded } from './errors.js';
import { raceRefusal, refusedError, refusedSubscription } from './refusal.js';
import { plainReply, ScriptCalls } from './script-calls.js';

const debug = createDebug('redis-once:node-redis');

/**
 * The members of a node-redis (v5 or later) client that we use, described by shape: the package is
 * never imported, so the caller's copy (whatever its version) is the one that runs.
 */
export interface NodeRedisClient {
  readonly isOpen: boolean;
  readonly isReady: boolean;
  // Mutable arrays and `any` listener arguments: node-redis' own declarations, so that a client from
  // createClient() is assignable as it is, whatever its type parameters (RESP2 or 3, modules, mapping).
  sendCommand(args: string[], options?: unknown): Promise<unknown>;
  duplicate(overrides?: unknown): NodeRedisClient;
  connect(): Promise<unknown>;
  destroy(): void;
  // biome-ignore lint/suspicious/noExplicitAny: node-redis declares its listeners' arguments as any[]
  on(event: string, listener: (...args: any[]) => void): unknown;
  SUBSCRIBE(channels: string[], listener: (message: string, channel: string) => void): Promise<void>;
  SSUBSCRIBE(channels: string[], listener: (message: string, channel: string) => void): Promise<void>;
  UNSUBSCRIBE(channels: string[], listener?: (message: string, channel: string) => void): Promise<void>;
  SUNSUBSCRIBE(channels: string[], listener?: (message: string, channel: string) => void): Promise<void>;
}

export interface ClusterNode {
  readonly host: string;
  readonly port: number;
}

export interface NodeRedisCluster {
  readonly isOpen: boolean;
  readonly slots: ReadonlyArray<{ master: ClusterNode } | undefined>;
  readonly masters: readonly ClusterNode[];
  sendCommand(
    firstKey: string | undefined,
    isReadonly: boolean | undefined,
    args: string[],
  ): Promise<unknown>;
  nodeClient(node: ClusterNode): NodeRedisClient | Promise<NodeRedisClient>;
}

/**
 * The adapter for node-redis v5 and later (RESP2 or RESP3), `createClient` and `createCluster`. The
 * caller's client is used as it is (passed connected) and never closed; subscriber connections are
 * our own duplicates (of the client, or of a Cluster master's client), closed by us.
 *
 * node-redis resubscribes by itself after a reconnect, and emits 'ready' only once those
 * subscriptions are confirmed, so 'ready' is when our subscriptions are back. The server ending a
 * sharded subscription (a slot moved) reaches us as 'sharded-channel-moved'.
 */
export class NodeRedisDriver implements Driver {
  readonly family = 'node-redis';
  readonly isCluster: boolean;
  private readonly calls: ScriptCalls;
  /** Our own view of the Cluster's slots, read with CLUSTER SLOTS when asked to refresh. */
  private slotMasters: Map<number, NodeAddress> | undefined;

  constructor(
    private readonly client: NodeRedisClient | NodeRedisCluster,
    private readonly timeoutMs: number,
    readonly label: string,
  ) {
    this.isCluster = isNodeRedisCluster(client);
    this.calls = new ScriptCalls((command, args) => this.send([command, ...args]), this.isCluster);
  }

  evalScript(script: LuaScript, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    let call = this.calls.eval(script, keys, args);
    // Reconnecting, the client queues our command: hear a refusal (TLS, AUTH) meanwhile, not at our bound.
    if (!this.isCluster && !(this.client as NodeRedisClient).isReady) {
      call = raceRefusal(call, this.client as NodeRedisClient, this.label, `the ${script.name} script`);
    }
    return bounded(call, this.label, script.name, this.timeoutMs).then(plainReply);
  }

  waitForReplicas(key: string, replicas: number, timeoutMs: number): Promise<number> {
    const call = (async () => {
      const args = ['WAIT', String(replicas), String(timeoutMs)];
      if (!this.isCluster) return Number(await (this.client as NodeRedisClient).sendCommand(args));
      // WAIT through the Cluster object goes to every master; ask the key's own master.
      const node = await this.masterNode(keySlot(key));
      return Number(await (await (this.client as NodeRedisCluster).nodeClient(node)).sendCommand(args));
    })();
    return bounded(call, this.label, 'WAIT', this.timeoutMs);
  }

  serverInfo(section: string): Promise<string> {
    const call = (async () => {
      const args = ['INFO', section];
      if (!this.isCluster) return String(await (this.client as NodeRedisClient).sendCommand(args));
      const cluster = this.client as NodeRedisCluster;
      return String(await (await cluster.nodeClient(cluster.masters[0]!)).sendCommand(args));
    })();
    return bounded(call, this.label, 'INFO', this.timeoutMs);
  }

  openSubscriber(events: SubscriberEvents, master?: NodeAddress): SubscriberConnection {
    const label = master ? `${master.host}:${master.port}` : this.label;
    const connection = this.isCluster
      ? (async () => {
          const cluster = this.client as NodeRedisCluster;
          const node =
            cluster.masters.find((m) => master && m.host === master.host && m.port === master.port) ??
            cluster.masters[0];
          if (!node) throw new RedisUnavailableError(`The Cluster at ${this.label} has no known master yet.`);
          const base = await cluster.nodeClient(node);
          return base.duplicate(
            master ? { socket: { ...socketOf(base), host: master.host, port: master.port } } : undefined,
          );
        })()
      : Promise.resolve((this.client as NodeRedisClient).duplicate());
    return new NodeRedisSubscriber(connection, events, label);
  }

  async masterOf(slot: number, refresh: boolean): Promise<NodeAddress> {
    if (refresh || !this.slotMasters) {
      const slots = (this.client as NodeRedisCluster).sendCommand(undefined, true, ['CLUSTER', 'SLOTS']);
      const reply = await bounded(slots, this.label, 'CLUSTER SLOTS', this.timeoutMs);
      this.slotMasters = slotTable(plainReply(reply));
    }
    const address = this.slotMasters.get(slot) ?? (this.client as NodeRedisCluster).slots[slot]?.master;
    if (!address)
      throw new RedisUnavailableError(`No master of the Cluster at ${this.label} serves slot ${slot}.`);
    return { host: address.host, port: address.port };
  }

  async close(): Promise<void> {
    // The client is always the caller's: nothing of theirs to close.
  }

  private send(args: readonly string[]): Promise<unknown> {
    if (!this.isCluster) return (this.client as NodeRedisClient).sendCommand(args as string[]);
    // EVALSHA/EVAL route by their first key; SCRIPT LOAD is never sent to a Cluster (see ScriptCalls).
    const firstKey = args[0] === 'EVALSHA' || args[0] === 'EVAL' ? args[3] : undefined;
    return (this.client as NodeRedisCluster).sendCommand(firstKey, false, args as string[]);
  }

  private async masterNode(slot: number): Promise<ClusterNode> {
    const address = await this.masterOf(slot, false);
    const node = (this.client as NodeRedisCluster).masters.find(
      (m) => m.host === address.host && m.port === address.port,
    );
    if (!node) throw new RedisUnavailableError(`The master ${address.host}:${address.port} is not known.`);
    return node;
  }
}

class NodeRedisSubscriber implements SubscriberConnection {
  private client: NodeRedisClient | undefined;
  private up = false;
  private closed = false;
  private readonly listener: (message: string, channel: string) => void;

  constructor(
    private readonly connection: Promise<NodeRedisClient>,
    events: SubscriberEvents,
    readonly label: string,
  ) {
    this.listener = (message, channel) => events.message(channel, message);
    connection.then(
      (client) => {
        this.client = client;
        if (this.closed) return client.destroy();
        const down = (error?: Error) => {
          if (!this.up) return;
          this.up = false;
          if (!this.closed) events.down(error);
        };
        // Without an 'error' listener node-redis would crash the process on a dropped connection.
        client.on('error', (error: Error) => {
          debug('%s subscriber: %s', label, error.message);
          down(error);
          const refused = refusedError(error, label, 'a connection attempt');
          if (refused) events.refused?.(refused);
        });
        client.on('end', () => down());
        client.on('ready', () => {
          this.up = true;
          events.up();
        });
        client.on('sharded-channel-moved', (channel: string) => events.dropped(channel));
        client.connect().catch((error: unknown) => debug('%s subscriber: %s', label, errorText(error)));
      },
      (error: unknown) => debug('%s subscriber: %s', label, errorText(error)),
    );
  }

  async subscribe(channels: readonly string[], sharded: boolean): Promise<void> {
    const client = await this.connection;
    try {
      await (sharded
        ? client.SSUBSCRIBE([...channels], this.listener)
        : client.SUBSCRIBE([...channels], this.listener));
    } catch (error) {
      throw refusedSubscription(error, channels, sharded);
    }
  }

  async unsubscribe(channels: readonly string[], sharded: boolean): Promise<void> {
    const client = await this.connection;
    await (sharded
      ? client.SUNSUBSCRIBE([...channels], this.listener)
      : client.UNSUBSCRIBE([...channels], this.listener));
  }

  async ping(): Promise<void> {
    const client = await this.connection;
    await client.sendCommand(['PING']);
  }

  async close(): Promise<void> {
    this.closed = true;
    // destroy(), not close(): close waits for pending replies, which a dead server never sends.
    if (this.client?.isOpen) this.client.destroy();
  }
}

export function isNodeRedisCluster(client: unknown): client is NodeRedisCluster {
  const candidate = client as Partial<NodeRedisCluster> | null;
  return typeof candidate?.nodeClient === 'function' && Array.isArray(candidate.masters);
}

/** The socket options of a node client (TLS, timeouts), to reach another master the same way. */
function socketOf(client: NodeRedisClient): Record<string, unknown> {
  const options = (client as unknown as { options?: { socket?: Record<string, unknown> } }).options;
  return { ...(options?.socket ?? {}) };
}

/** CLUSTER SLOTS: [[start, end, [host, port, id, …], replicas…], …] → slot → master. */
function slotTable(reply: unknown): Map<number, NodeAddress> {
  const table = new Map<number, NodeAddress>();
  if (!Array.isArray(reply)) return table;
  for (const range of reply) {
    if (!Array.isArray(range) || !Array.isArray(range[2])) continue;
    const [start, end, master] = range as [number, number, [string, number]];
    for (let slot = Number(start); slot <= Number(end); slot++) {
      table.set(slot, { host: String(master[0]), port: Number(master[1]) });
    }
  }
  return table;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
