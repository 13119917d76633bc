/**
 * The subscription layer on a stub driver: no Redis. Each subscriber connection is a stub whose
 * SUBSCRIBE and UNSUBSCRIBE wait on gates the test opens (the server's confirmation), and whose events
 * (up, down, dropped, message) the test fires itself. Every command a connection sends is logged in
 * order, as the server would process it, so a test can replay the log and say what the server ends up
 * subscribed to. Real timers, except where a timeout must elapse.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type {
  Driver,
  NodeAddress,
  SubscriberConnection,
  SubscriberEvents,
} from '../../src/drivers/driver.js';
import { RedisUnavailableError } from '../../src/errors.js';
import { keySlot } from '../../src/slot.js';
import { type ChannelWatcher, Subscriptions } from '../../src/subscriber.js';
import { type Gate, gate } from '../helpers/gate.js';

const TIMEOUT_MS = 5_000;
const A: NodeAddress = { host: '10.0.0.1', port: 7001 };
const B: NodeAddress = { host: '10.0.0.2', port: 7002 };

/** One command a stub connection sent; `reply` is the server's answer (an error: it refused). */
interface Sent {
  readonly op: 'subscribe' | 'unsubscribe';
  readonly channels: readonly string[];
  readonly sharded: boolean;
  readonly reply: Gate<Error | undefined>;
  refused: boolean;
}

class StubConnection implements SubscriberConnection {
  readonly sent: Sent[] = [];
  closed = false;
  /** Whether the test brought the connection up (and not down since). */
  isUp = false;

  constructor(
    readonly events: SubscriberEvents,
    readonly master: NodeAddress | undefined,
  ) {}

  get label(): string {
    return this.master ? `${this.master.host}:${this.master.port}` : 'main';
  }

  subscribe(channels: readonly string[], sharded: boolean): Promise<void> {
    return this.send('subscribe', channels, sharded);
  }

  /** Confirmed at once: no test needs to hold an UNSUBSCRIBE. */
  unsubscribe(channels: readonly string[], sharded: boolean): Promise<void> {
    const done = this.send('unsubscribe', channels, sharded);
    this.sent.at(-1)!.reply.open(undefined);
    return done;
  }

  /** Answered at once while `answersPings`; a silent (half-open) connection never answers. */
  answersPings = true;
  pings = 0;
  ping(): Promise<void> {
    this.pings++;
    return this.answersPings ? Promise.resolve() : new Promise(() => {});
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** The connection is up (connected or reconnected): what a driver reports on 'ready'. */
  up(): void {
    this.isUp = true;
    this.events.up();
  }

  /** The connection dropped. */
  down(error?: Error): void {
    this.isUp = false;
    this.events.down(error);
  }

  /** The SUBSCRIBE commands sent so far (for one channel, when given). */
  subscribes(channel?: string): Sent[] {
    return this.sent.filter((s) => s.op === 'subscribe' && (!channel || s.channels.includes(channel)));
  }

  unsubscribes(channel?: string): Sent[] {
    return this.sent.filter((s) => s.op === 'unsubscribe' && (!channel || s.channels.includes(channel)));
  }

  /** Confirms the last SUBSCRIBE of `channel` (the server's reply arrives). */
  confirm(channel: string): void {
    this.lastSubscribe(channel).reply.open(undefined);
  }

  /** The server answers the last SUBSCRIBE of `channel` with an error. */
  refuse(channel: string, error: Error): void {
    const sent = this.lastSubscribe(channel);
    sent.refused = true;
    sent.reply.open(error);
  }

  /**
   * What the server is subscribed to once it has processed every command sent so far, in the order
   * sent (whenever their replies reach the client): a SUBSCRIBE it did not refuse subscribes, an
   * UNSUBSCRIBE undoes it.
   */
  serverSubscriptions(): Set<string> {
    const subscribed = new Set<string>();
    for (const s of this.sent) {
      for (const channel of s.channels) {
        if (s.op === 'unsubscribe') subscribed.delete(channel);
        else if (!s.refused) subscribed.add(channel);
      }
    }
    return subscribed;
  }

  private lastSubscribe(channel: string): Sent {
    const sent = this.subscribes(channel).at(-1);
    if (!sent) throw new Error(`nothing subscribed ${channel} on ${this.label}`);
    return sent;
  }

  private send(op: Sent['op'], channels: readonly string[], sharded: boolean): Promise<void> {
    const reply = gate<Error | undefined>();
    this.sent.push({ op, channels: [...channels], sharded, reply, refused: false });
    return reply.promise.then((error) => {
      if (error) throw error;
    });
  }
}

interface Stub {
  driver: Driver;
  connections: StubConnection[];
  /** The connections opened to `master` (standalone: `undefined`), oldest first. */
  to(master: NodeAddress | undefined): StubConnection[];
  /** The last connection opened to `master`. */
  conn(master?: NodeAddress): StubConnection;
  masterOf: ReturnType<typeof vi.fn<(slot: number, refresh: boolean) => Promise<NodeAddress>>>;
  /** Cluster: who serves each slot from now on (what a refresh of the slots would find). */
  owners: Map<number, NodeAddress>;
}

/** A driver whose subscriber connections are stubs; on a Cluster, `owners` tells who serves a slot. */
function stubDriver({ cluster = false, owner = A }: { cluster?: boolean; owner?: NodeAddress } = {}): Stub {
  const connections: StubConnection[] = [];
  const owners = new Map<number, NodeAddress>();
  const masterOf = vi.fn(async (slot: number, _refresh: boolean) => owners.get(slot) ?? owner);
  const driver: Driver = {
    family: 'ioredis',
    label: cluster ? 'cluster(stub)' : 'stub:6379',
    isCluster: cluster,
    evalScript: () => Promise.reject(new Error('no scripts in this test')),
    waitForReplicas: () => Promise.reject(new Error('no WAIT in this test')),
    serverInfo: () => Promise.reject(new Error('no INFO in this test')),
    openSubscriber(events, master) {
      const connection = new StubConnection(events, master);
      connections.push(connection);
      return connection;
    },
    masterOf,
    close: async () => {},
  };
  const same = (a: NodeAddress | undefined, b: NodeAddress | undefined) =>
    a === b || (a !== undefined && b !== undefined && a.host === b.host && a.port === b.port);
  const to = (master: NodeAddress | undefined) => connections.filter((c) => same(c.master, master));
  return {
    driver,
    connections,
    to,
    conn(master) {
      const last = to(master).at(-1);
      if (!last) throw new Error(`no connection to ${master ? `${master.host}:${master.port}` : 'main'}`);
      return last;
    },
    masterOf,
    owners,
  };
}

/** A watcher that records what it hears. */
function recorder() {
  const heard: string[] = [];
  const watcher: ChannelWatcher = {
    message: (text) => heard.push(`message ${text}`),
    gap: () => heard.push('gap'),
    back: () => heard.push('back'),
  };
  return { watcher, heard };
}

/** How a promise settled so far. */
function watch<T>(promise: Promise<T>) {
  const state: { settled: 'pending' | 'resolved' | 'rejected'; value?: T; error?: unknown } = {
    settled: 'pending',
  };
  promise.then(
    (value) => Object.assign(state, { settled: 'resolved', value }),
    (error: unknown) => Object.assign(state, { settled: 'rejected', error }),
  );
  return state;
}

/** Lets every pending promise callback run (setImmediate is never faked here). */
async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** listen, with the connection brought up and the subscription confirmed: the usual start. */
async function listening(
  subs: Subscriptions,
  stub: Stub,
  channel: string,
  watcher: ChannelWatcher,
  { sharded = false, master }: { sharded?: boolean; master?: NodeAddress } = {},
): Promise<() => void> {
  const listened = subs.listen(channel, sharded, watcher);
  await flush();
  const conn = stub.conn(master);
  if (!conn.isUp) conn.up();
  await flush();
  conn.confirm(channel);
  return listened;
}

const subscriptions: Subscriptions[] = [];
function open(stub: Stub, timeoutMs = TIMEOUT_MS): Subscriptions {
  const subs = new Subscriptions(stub.driver, timeoutMs);
  subscriptions.push(subs);
  return subs;
}

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(subscriptions.splice(0).map((subs) => subs.close()));
});

describe('Subscriptions: listening', () => {
  it('resolves listen only once the server confirmed the SUBSCRIBE, not when it was sent', async () => {
    const stub = stubDriver();
    const subs = open(stub);
    const { watcher, heard } = recorder();
    const listened = watch(subs.listen('ns:control', false, watcher));
    await flush();

    expect(stub.connections).toHaveLength(1);
    const conn = stub.conn();
    expect(conn.master).toBeUndefined();
    // Not connected yet: nothing is sent before the connection is up.
    expect(conn.sent).toHaveLength(0);
    conn.up();
    await flush();
    expect(conn.subscribes()).toHaveLength(1);
    expect(conn.subscribes()[0]).toMatchObject({ channels: ['ns:control'], sharded: false });
    expect(listened.settled).toBe('pending');

    conn.confirm('ns:control');
    await flush();
    expect(listened.settled).toBe('resolved');
    expect(heard).toEqual([]);
  });

  it('shares one SUBSCRIBE among the watchers of a channel, and a later listen resolves at once', async () => {
    const stub = stubDriver();
    const subs = open(stub);
    const first = watch(subs.listen('ns:{k}:done', false, recorder().watcher));
    const second = watch(subs.listen('ns:{k}:done', false, recorder().watcher));
    await flush();
    stub.conn().up();
    await flush();
    expect(stub.conn().subscribes()).toHaveLength(1);
    stub.conn().confirm('ns:{k}:done');
    await flush();
    expect([first.settled, second.settled]).toEqual(['resolved', 'resolved']);

    await subs.listen('ns:{k}:done', false, recorder().watcher);
    expect(stub.conn().subscribes()).toHaveLength(1);
    expect(stub.connections).toHaveLength(1);
  });

  it('rejects listen when the server refuses the SUBSCRIBE, and the watcher is not kept', async () => {
    const stub = stubDriver();
    const subs = open(stub);
    const { watcher, heard } = recorder();
    const listened = watch(subs.listen('ns:{k}:done', false, watcher));
    await flush();
    stub.conn().up();
    await flush();
    stub.conn().refuse('ns:{k}:done', new Error("NOPERM no permissions to access the 'ns:{k}:done' channel"));
    await flush();
    expect(listened.settled).toBe('rejected');
    expect(stub.conn().serverSubscriptions().size).toBe(0);
    stub.conn().events.message('ns:{k}:done', 'late');
    expect(heard).toEqual([]);
  });

  it('keeps a listen whose connection dropped before the confirmation, and resolves it once resubscribed', async () => {
    // node-redis rejects the commands awaiting a reply when its socket drops (after its 'error' event),
    // then reconnects within moments. The listen is bounded by redisTimeoutMs, not by the first socket,
    // and it rejects only with RedisUnavailableError.
    const stub = stubDriver();
    const subs = open(stub);
    const listened = watch(subs.listen('ns:{k}:done', false, recorder().watcher));
    await flush();
    const conn = stub.conn();
    conn.up();
    await flush();
    conn.down(new Error('Socket closed unexpectedly'));
    conn.refuse('ns:{k}:done', new Error('Socket closed unexpectedly'));
    await flush();
    if (listened.settled === 'rejected') expect(listened.error).toBeInstanceOf(RedisUnavailableError);
    expect(listened.settled).toBe('pending');

    conn.up();
    await flush();
    expect(conn.subscribes('ns:{k}:done')).toHaveLength(2);
    conn.confirm('ns:{k}:done');
    await flush();
    expect(listened.settled).toBe('resolved');
  });

  it('routes a sharded channel on a Cluster to the connection of its slot master', async () => {
    const stub = stubDriver({ cluster: true });
    stub.owners.set(keySlot('ns:{b}:done'), B);
    const subs = open(stub);
    await listening(subs, stub, 'ns:{a}:done', recorder().watcher, { sharded: true, master: A });
    await listening(subs, stub, 'ns:{b}:done', recorder().watcher, { sharded: true, master: B });

    expect(stub.masterOf).toHaveBeenCalledWith(keySlot('ns:{a}:done'), false);
    expect(stub.masterOf).toHaveBeenCalledWith(keySlot('ns:{b}:done'), false);
    expect(stub.connections.map((c) => c.master)).toEqual([A, B]);
    expect(stub.conn(A).subscribes()).toEqual([
      expect.objectContaining({ channels: ['ns:{a}:done'], sharded: true }),
    ]);
    expect(stub.conn(B).subscribes()).toEqual([
      expect.objectContaining({ channels: ['ns:{b}:done'], sharded: true }),
    ]);
  });
});

describe('Subscriptions: gaps and coming back', () => {
  it('says gap when the connection drops, and back only once the resubscription made at the next up is confirmed', async () => {
    // The suspected bug: ioredis emits 'ready' before it resubscribes, so a re-read at `up` could race
    // the SUBSCRIBE and miss a message sent in between. `back` must wait for the server's confirmation.
    const stub = stubDriver();
    const subs = open(stub);
    const { watcher, heard } = recorder();
    await listening(subs, stub, 'ns:{k}:done', watcher);
    const conn = stub.conn();

    conn.down(new Error('read ECONNRESET'));
    await flush();
    expect(heard).toEqual(['gap']);
    // Down: nothing can be sent until the connection is up again.
    expect(conn.subscribes()).toHaveLength(1);

    conn.up();
    await flush();
    expect(conn.subscribes()).toHaveLength(2);
    expect(heard).toEqual(['gap']);

    conn.confirm('ns:{k}:done');
    await flush();
    expect(heard).toEqual(['gap', 'back']);

    conn.events.message('ns:{k}:done', 'done');
    expect(heard).toEqual(['gap', 'back', 'message done']);
    // One connection throughout, no new one opened for the reconnect.
    expect(stub.connections).toHaveLength(1);
  });

  it('says gap once for a connection that drops twice before it is back', async () => {
    const stub = stubDriver();
    const subs = open(stub);
    const { watcher, heard } = recorder();
    await listening(subs, stub, 'ns:{k}:done', watcher);
    const conn = stub.conn();

    conn.down(undefined);
    conn.up();
    await flush();
    conn.down(undefined);
    await flush();
    expect(heard).toEqual(['gap']);
    conn.up();
    await flush();
    conn.confirm('ns:{k}:done');
    await flush();
    expect(heard).toEqual(['gap', 'back']);
  });

  it('retries a resubscription the server refuses, and says back only once one is confirmed', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const stub = stubDriver();
    const subs = open(stub);
    const { watcher, heard } = recorder();
    await listening(subs, stub, 'ns:{k}:done', watcher);
    const conn = stub.conn();

    conn.down(undefined);
    conn.up();
    await flush();
    conn.refuse('ns:{k}:done', new Error('LOADING Redis is loading the dataset in memory'));
    await flush();
    expect(heard).toEqual(['gap']);
    expect(conn.subscribes()).toHaveLength(2);

    await vi.advanceTimersByTimeAsync(2_000);
    await flush();
    expect(conn.subscribes()).toHaveLength(3);
    expect(heard).toEqual(['gap']);
    conn.confirm('ns:{k}:done');
    await flush();
    expect(heard).toEqual(['gap', 'back']);
  });

  it('moves a channel the server unsubscribed (its slot moved) to the new master, says back once confirmed there, and closes the old connection once empty', async () => {
    const stub = stubDriver({ cluster: true });
    const subs = open(stub);
    const channel = 'ns:{moving}:done';
    const { watcher, heard } = recorder();
    await listening(subs, stub, channel, watcher, { sharded: true, master: A });
    const oldConn = stub.conn(A);
    stub.masterOf.mockClear();

    // The slot moved to B; A's server sends an unsolicited SUNSUBSCRIBE.
    stub.owners.set(keySlot(channel), B);
    oldConn.events.dropped(channel);
    await flush();
    expect(heard).toEqual(['gap']);
    expect(stub.masterOf).toHaveBeenCalledWith(keySlot(channel), true);
    const newConn = stub.conn(B);
    expect(oldConn.closed).toBe(true);
    expect(newConn.closed).toBe(false);

    newConn.up();
    await flush();
    expect(newConn.subscribes(channel)).toEqual([expect.objectContaining({ sharded: true })]);
    expect(heard).toEqual(['gap']);
    newConn.confirm(channel);
    await flush();
    expect(heard).toEqual(['gap', 'back']);

    // Messages count only from the connection the channel lives on now.
    oldConn.events.message(channel, 'stale');
    newConn.events.message(channel, 'done');
    expect(heard).toEqual(['gap', 'back', 'message done']);
  });

  it('keeps the old master connection open while other channels still live on it', async () => {
    const stub = stubDriver({ cluster: true });
    const subs = open(stub);
    const moving = 'ns:{moving}:done';
    const staying = 'ns:{staying}:done';
    const stays = recorder();
    await listening(subs, stub, moving, recorder().watcher, { sharded: true, master: A });
    await listening(subs, stub, staying, stays.watcher, { sharded: true, master: A });
    const connA = stub.conn(A);

    stub.owners.set(keySlot(moving), B);
    connA.events.dropped(moving);
    await flush();
    expect(connA.closed).toBe(false);
    expect(stays.heard).toEqual([]);
    connA.events.message(staying, 'still here');
    expect(stays.heard).toEqual(['message still here']);
  });

  it('ignores a SUNSUBSCRIBE from a connection the channel does not live on', async () => {
    const stub = stubDriver({ cluster: true });
    stub.owners.set(keySlot('ns:{b}:done'), B);
    const subs = open(stub);
    await listening(subs, stub, 'ns:{a}:done', recorder().watcher, { sharded: true, master: A });
    const onB = recorder();
    await listening(subs, stub, 'ns:{b}:done', onB.watcher, { sharded: true, master: B });
    stub.masterOf.mockClear();

    stub.conn(A).events.dropped('ns:{b}:done');
    await flush();
    expect(onB.heard).toEqual([]);
    expect(stub.masterOf).not.toHaveBeenCalled();
  });

  it('tries the new master again when the slots it read after an SUNSUBSCRIBE still named the old one', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const stub = stubDriver({ cluster: true });
    const subs = open(stub);
    const channel = 'ns:{moving}:done';
    const { watcher, heard } = recorder();
    await listening(subs, stub, channel, watcher, { sharded: true, master: A });
    const connA = stub.conn(A);

    connA.events.dropped(channel);
    await flush();
    // The refresh still says A: the SSUBSCRIBE goes to A, which answers MOVED.
    expect(connA.subscribes(channel)).toHaveLength(2);
    stub.owners.set(keySlot(channel), B);
    connA.refuse(channel, new Error(`MOVED ${keySlot(channel)} 10.0.0.2:7002`));
    await flush();
    expect(stub.to(B)).toHaveLength(0);

    await vi.advanceTimersByTimeAsync(2_000);
    await flush();
    const connB = stub.conn(B);
    expect(connA.closed).toBe(true);
    connB.up();
    await flush();
    connB.confirm(channel);
    await flush();
    expect(heard).toEqual(['gap', 'back']);
  });

  it('moves a channel off a master that died once the Cluster failed over, though the slots still named it when it dropped', async () => {
    // A master dies: its subscriber connection drops and never comes back. The Cluster keeps naming it
    // until cluster-node-timeout has passed, then promotes a replica (B). The slots read at the drop
    // still say A, so the channel must be routed again later, or it waits for A forever.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const stub = stubDriver({ cluster: true });
    const subs = open(stub);
    const channel = 'ns:{k}:done';
    const { watcher, heard } = recorder();
    await listening(subs, stub, channel, watcher, { sharded: true, master: A });

    stub.conn(A).down(new Error('connect ECONNREFUSED 10.0.0.1:7001'));
    await flush();
    expect(heard).toEqual(['gap']);
    await vi.advanceTimersByTimeAsync(3_000);
    stub.owners.set(keySlot(channel), B);
    // Within the longest retry pause (2 s) of the failover, the channel is on B.
    await vi.advanceTimersByTimeAsync(2_500);
    await flush();
    expect(stub.to(B)).toHaveLength(1);
    const connB = stub.conn(B);
    connB.up();
    await flush();
    connB.confirm(channel);
    await flush();
    expect(heard).toEqual(['gap', 'back']);
  });

  it('routes again when a Cluster master connection drops, following a failover to another master', async () => {
    const stub = stubDriver({ cluster: true });
    const subs = open(stub);
    const channel = 'ns:{k}:done';
    const { watcher, heard } = recorder();
    await listening(subs, stub, channel, watcher, { sharded: true, master: A });
    const oldConn = stub.conn(A);
    stub.masterOf.mockClear();

    stub.owners.set(keySlot(channel), B);
    oldConn.down(new Error('connect ECONNREFUSED'));
    await flush();
    expect(heard).toEqual(['gap']);
    expect(stub.masterOf).toHaveBeenCalledWith(keySlot(channel), true);
    expect(oldConn.closed).toBe(true);

    const newConn = stub.conn(B);
    newConn.up();
    await flush();
    newConn.confirm(channel);
    await flush();
    expect(heard).toEqual(['gap', 'back']);
  });
});

describe('Subscriptions: a SUBSCRIBE that timed out', () => {
  it('rejects listen with RedisUnavailableError, and undoes the subscription when its confirmation comes late', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const stub = stubDriver();
    const subs = open(stub, 100);
    const { watcher, heard } = recorder();
    const listened = watch(subs.listen('ns:{late}:done', false, watcher));
    await flush();
    const conn = stub.conn();
    conn.up();
    await flush();
    expect(conn.subscribes('ns:{late}:done')).toHaveLength(1);

    await vi.advanceTimersByTimeAsync(100);
    await flush();
    expect(listened.settled).toBe('rejected');
    expect(listened.error).toBeInstanceOf(RedisUnavailableError);
    expect((listened.error as Error).message).toMatch(/ns:\{late\}:done.*100 ms \(redisTimeoutMs\)/);

    // The server was only slow: its confirmation arrives now. Nobody waits on it any more.
    conn.confirm('ns:{late}:done');
    await flush();
    expect(conn.unsubscribes('ns:{late}:done').length).toBeGreaterThan(0);
    expect(conn.serverSubscriptions().has('ns:{late}:done')).toBe(false);
    conn.events.message('ns:{late}:done', 'nobody hears this');
    expect(heard).toEqual([]);
  });

  it('does not undo a newer subscription of the same channel when a timed-out one is confirmed late', async () => {
    // A caller whose listen timed out tries again (a new run, or the control channel's next listen)
    // while the server still owes the first reply. Replies arrive in order: first the late one, then
    // the new one. The new watcher is told it is subscribed, so the server must be subscribed.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const stub = stubDriver();
    const subs = open(stub, 100);
    const channel = 'ns:control';
    const first = watch(subs.listen(channel, false, recorder().watcher));
    await flush();
    const conn = stub.conn();
    conn.up();
    await flush();
    await vi.advanceTimersByTimeAsync(100);
    await flush();
    expect(first.settled).toBe('rejected');

    const again = recorder();
    const second = watch(subs.listen(channel, false, again.watcher));
    await flush();
    const [late, fresh] = conn.subscribes(channel);
    expect(fresh).toBeDefined();
    late!.reply.open(undefined);
    await flush();
    fresh!.reply.open(undefined);
    await flush();
    expect(second.settled).toBe('resolved');

    // The second watcher counts as subscribed: the server must be, or its messages are lost.
    expect(conn.serverSubscriptions().has(channel)).toBe(true);
  });

  it('does not undo a newer subscription of the same channel when one made for watchers that left is confirmed late', async () => {
    // The same race without a timeout: a resubscription is in flight when the channel's last watcher
    // leaves (its flight ended) and a new flight of the key listens again before the server replied.
    const stub = stubDriver();
    const subs = open(stub);
    const channel = 'ns:{k}:done';
    const stop = await listening(subs, stub, channel, recorder().watcher);
    const conn = stub.conn();
    conn.down();
    conn.up();
    await flush();
    expect(conn.subscribes(channel)).toHaveLength(2);
    stop();

    const second = watch(subs.listen(channel, false, recorder().watcher));
    await flush();
    const [, resubscription, fresh] = conn.subscribes(channel);
    expect(fresh).toBeDefined();
    resubscription!.reply.open(undefined);
    await flush();
    fresh!.reply.open(undefined);
    await flush();
    expect(second.settled).toBe('resolved');
    expect(conn.serverSubscriptions().has(channel)).toBe(true);
  });

  it('leaves other watchers of the channel subscribed when one of them timed out', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const stub = stubDriver();
    const subs = open(stub, 100);
    const channel = 'ns:{k}:done';
    const early = recorder();
    const firstListen = watch(subs.listen(channel, false, early.watcher));
    await flush();
    stub.conn().up();
    await flush();
    await vi.advanceTimersByTimeAsync(60);
    const later = recorder();
    const secondListen = watch(subs.listen(channel, false, later.watcher));
    await vi.advanceTimersByTimeAsync(40);
    await flush();
    expect(firstListen.settled).toBe('rejected');
    expect(secondListen.settled).toBe('pending');

    stub.conn().confirm(channel);
    await flush();
    expect(secondListen.settled).toBe('resolved');
    expect(stub.conn().unsubscribes()).toEqual([]);
    stub.conn().events.message(channel, 'done');
    expect(later.heard).toEqual(['message done']);
    expect(early.heard).toEqual([]);
  });
});

describe('Subscriptions: unwatching and closing', () => {
  it('unsubscribes when the last watcher of a channel leaves, not before', async () => {
    const stub = stubDriver();
    const subs = open(stub);
    const stopFirst = await listening(subs, stub, 'ns:{k}:done', recorder().watcher);
    const stopSecond = await subs.listen('ns:{k}:done', false, recorder().watcher);
    const conn = stub.conn();

    stopFirst();
    expect(conn.unsubscribes()).toEqual([]);
    stopSecond();
    expect(conn.unsubscribes()).toEqual([
      expect.objectContaining({ channels: ['ns:{k}:done'], sharded: false }),
    ]);
    expect(conn.serverSubscriptions().size).toBe(0);
    // One Redis: its one subscriber connection stays for the next channel.
    expect(conn.closed).toBe(false);
    // A stop called twice changes nothing more.
    stopSecond();
    expect(conn.unsubscribes()).toHaveLength(1);
  });

  it('on a Cluster, SUNSUBSCRIBEs the last watcher’s channel and closes the master connection left without channels', async () => {
    const stub = stubDriver({ cluster: true });
    const subs = open(stub);
    const stop = await listening(subs, stub, 'ns:{k}:done', recorder().watcher, { sharded: true, master: A });
    const conn = stub.conn(A);
    stop();
    expect(conn.unsubscribes()).toEqual([
      expect.objectContaining({ channels: ['ns:{k}:done'], sharded: true }),
    ]);
    expect(conn.closed).toBe(true);

    // The next channel on that master gets a connection of its own.
    await listening(subs, stub, 'ns:{k}:done', recorder().watcher, { sharded: true, master: A });
    expect(stub.to(A)).toHaveLength(2);
  });

  it('closes every connection on close(), and refuses to listen afterwards', async () => {
    const stub = stubDriver({ cluster: true });
    stub.owners.set(keySlot('ns:{b}:done'), B);
    const subs = open(stub);
    await listening(subs, stub, 'ns:{a}:done', recorder().watcher, { sharded: true, master: A });
    await listening(subs, stub, 'ns:{b}:done', recorder().watcher, { sharded: true, master: B });
    await listening(subs, stub, 'ns:control', recorder().watcher, { master: A });

    await subs.close();
    expect(stub.connections.map((c) => c.closed)).toEqual([true, true]);
    await expect(subs.listen('ns:{c}:done', true, recorder().watcher)).rejects.toBeInstanceOf(
      RedisUnavailableError,
    );
    expect(stub.connections).toHaveLength(2);
  });

  it('closes a connection that was never up', async () => {
    const stub = stubDriver();
    const subs = open(stub, 50);
    const listened = subs.listen('ns:{k}:done', false, recorder().watcher);
    await flush();
    await subs.close();
    expect(stub.conn().closed).toBe(true);
    expect(stub.conn().sent).toEqual([]);
    // Its listen is still bounded by redisTimeoutMs.
    await expect(listened).rejects.toBeInstanceOf(RedisUnavailableError);
  });
});

describe('Subscriptions: messages', () => {
  it('reaches only the watchers of its channel, and only from the connection the channel lives on', async () => {
    const stub = stubDriver({ cluster: true });
    stub.owners.set(keySlot('ns:{b}:done'), B);
    const subs = open(stub);
    const a1 = recorder();
    const a2 = recorder();
    const b = recorder();
    await listening(subs, stub, 'ns:{a}:done', a1.watcher, { sharded: true, master: A });
    await subs.listen('ns:{a}:done', true, a2.watcher);
    await listening(subs, stub, 'ns:{b}:done', b.watcher, { sharded: true, master: B });

    stub.conn(A).events.message('ns:{a}:done', 'for a');
    stub.conn(B).events.message('ns:{b}:done', 'for b');
    // Wrong connection, or nobody's channel: dropped.
    stub.conn(B).events.message('ns:{a}:done', 'a on b');
    stub.conn(A).events.message('ns:{b}:done', 'b on a');
    stub.conn(A).events.message('ns:{nobody}:done', 'nobody');

    expect(a1.heard).toEqual(['message for a']);
    expect(a2.heard).toEqual(['message for a']);
    expect(b.heard).toEqual(['message for b']);
  });

  it('stops reaching a watcher once it left', async () => {
    const stub = stubDriver();
    const subs = open(stub);
    const leaving = recorder();
    const staying = recorder();
    const stop = await listening(subs, stub, 'ns:{k}:done', leaving.watcher);
    await subs.listen('ns:{k}:done', false, staying.watcher);
    stop();
    stub.conn().events.message('ns:{k}:done', 'done');
    expect(leaving.heard).toEqual([]);
    expect(staying.heard).toEqual(['message done']);
  });
});
