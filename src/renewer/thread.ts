/**
 * The standby renewer's thread: its own event loop and its own connection(s), so it can renew a lease
 * while the leader's thread is busy with synchronous work and cannot run its timers.
 *
 * It stands by: the leader's thread renews its own leases as always, and this one renews a watched
 * lease only when decision.ts says so (the leader's thread is stalled, not wedged, and late). A
 * renewal is proven by its reply (on a quorum, a majority's) and recorded in the lease's cell from the
 * instant it was sent; a refusal marks the cell REFUSED and tells the leader's thread. A cell no longer
 * RUNNING (fn settled, the lease lost, the instance closing) is never renewed again. Every timer here
 * is unref'd; the thread ends when its parent terminates it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Cluster, Redis } from 'ioredis';
import { ownedConnection } from '../drivers/index.js';
import { IoredisDriver } from '../drivers/ioredis.js';
import type { KeyNames } from '../keys.js';
import { QuorumStore } from '../quorum/store.js';
import { SingleStore } from '../store/single.js';
import type { Store } from '../store/store.js';
import {
  cellAt,
  countRenewal,
  generationOf,
  lastBeat,
  prove,
  provenSentAt,
  proveReply,
  RUNNING,
  refuse,
  stateOf,
  whileOurs,
} from './cell.js';
import type { RenewerConnection } from './connection.js';
import { abortAtOf, standbyMove } from './decision.js';
import type { ThreadConfig, ToMain, ToThread } from './messages.js';
import { drain } from './ring.js';

const config = workerData as ThreadConfig;
const clients = config.connections.map((connection) => open(connection, config.redisTimeoutMs));
const drivers = clients.map((client) => new IoredisDriver(client, true, config.redisTimeoutMs, 'renewer'));
// The leader's own stores renew here too: one master's rule, or a quorum's majority.
const store: Store = drivers.length > 1 ? new QuorumStore(drivers) : new SingleStore(drivers[0]!, undefined);
const heartbeat = config.heartbeat;
const watched = new Map<number, Watch>();
/** How often watched leases are scanned, while there are any. */
const SCAN_MS = 50;

interface Watch {
  cell: BigInt64Array;
  /** The cell's generation for this lease (cells are pooled). */
  generation: number;
  names: KeyNames;
  leaseValue: string;
  leaseMs: number;
  /** Without a heartbeat this long, the leader's thread counts as stalled (see `stalledAfter`). */
  stalledAfterMs: number;
  /** performance.now() at which the scan looks at it next. */
  lookAt: number;
  renewing: boolean;
}

function open(connection: RenewerConnection, timeoutMs: number): Redis | Cluster {
  const failFast = {
    // As the connections drivers/index.ts opens (see there why each), but connecting at once (a
    // stalled leader cannot wait for a handshake), sending no client name, and trying again sooner.
    ...ownedConnection(timeoutMs),
    lazyConnect: false,
    disableClientInfo: true,
    retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 1000),
  };
  const client =
    connection.kind === 'url'
      ? new Redis(connection.url, failFast)
      : connection.kind === 'redis'
        ? new Redis({ ...connection.options, ...failFast })
        : new Cluster(connection.nodes as never, {
            ...connection.clusterOptions,
            enableOfflineQueue: false,
            enableReadyCheck: false,
            redisOptions: { ...connection.redisOptions, ...failFast },
          });
  // Reported through the driver's calls (unanswered renewals), never printed by ioredis.
  client.on('error', () => {});
  return client;
}

function send(message: ToMain): void {
  parentPort!.postMessage(message);
}

// Ready once every connection is (or has had its time to be): figures, and tests that need it up.
void Promise.all(
  clients.map(
    (client) =>
      new Promise<void>((resolve) => {
        if (client.status === 'ready') return resolve();
        client.once('ready', () => resolve());
        setTimeout(resolve, config.redisTimeoutMs).unref();
      }),
  ),
).then(() => send({ type: 'ready' }));

parentPort!.on('message', ([id, where, generation, key, leaseKey, leaseValue, leaseMs]: ToThread) => {
  const cell = typeof where === 'number' ? cellAt(config.cells, where) : where;
  standBy(id, cell, generation, key, leaseKey, leaseValue, leaseMs);
});
const scanner = setInterval(scan, SCAN_MS);
scanner.unref();

function standBy(
  id: number,
  cell: BigInt64Array,
  generation: number,
  key: string,
  leaseKey: string,
  leaseValue: string,
  leaseMs: number,
): void {
  watched.set(id, {
    cell,
    generation,
    // What a renewal needs of the key's names: the lease's, and the key for messages.
    names: { key, lease: leaseKey } as KeyNames,
    leaseValue,
    leaseMs,
    stalledAfterMs: stalledAfter(leaseMs),
    lookAt: provenSentAt(cell) + leaseMs / 2,
    renewing: false,
  });
}

/**
 * How long without a heartbeat means stalled, for a lease of `leaseMs`: short enough to act at half the
 * lease, when the leader's own renewal (due at a third) is late; never under two beats, so a leader
 * that is awake — its timers a little late under load — is not taken for a stalled one.
 */
function stalledAfter(leaseMs: number): number {
  return Math.max(2 * config.beatMs, Math.min(1_000, leaseMs / 4));
}

/**
 * One timer for every watch, running while the thread does: it takes in the leases leads recorded
 * (ring.ts), drops those that ended (their cell not RUNNING for their generation: fn settled, lost,
 * closing), and looks at the others when due.
 */
function scan(): void {
  for (const r of drain(config.ring)) {
    standBy(r.id, cellAt(config.cells, r.slot), r.generation, r.key, r.leaseKey, r.leaseValue, r.leaseMs);
  }
  const now = performance.now();
  for (const [id, watch] of watched) {
    if (!ours(watch)) watched.delete(id);
    else if (!watch.renewing && now >= watch.lookAt) void look(id, watch, now);
  }
}

/** The watch's lease still holds its cell, and runs. */
function ours(watch: Watch): boolean {
  return generationOf(watch.cell) === watch.generation && stateOf(watch.cell) === RUNNING;
}

/** When to look at `watch` next: when its leader's own renewal is overdue, and then at this pace. */
function nextLook(watch: Watch, now: number): number {
  const due = provenSentAt(watch.cell) + watch.leaseMs / 2;
  return due > now ? due : now + Math.min(250, watch.leaseMs / 10);
}

async function look(id: number, watch: Watch, now: number): Promise<void> {
  const sentAt = provenSentAt(watch.cell);
  const move = standbyMove({
    now,
    provenSentAt: sentAt,
    lastBeat: lastBeat(heartbeat),
    leaseMs: watch.leaseMs,
    stalledAfterMs: watch.stalledAfterMs,
    maxStallMs: config.maxStallMs,
  });
  if (move.kind === 'drop') {
    watched.delete(id);
    return;
  }
  if (move.kind === 'wait') {
    watch.lookAt = nextLook(watch, now);
    return;
  }
  watch.renewing = true;
  const outcome = await store.renew(watch.names, watch, move.withinMs);
  watch.renewing = false;
  // Proven only if answered while the lease it extends could still be trusted (lease.ts's rule).
  const answeredAt = performance.now();
  // Every write below is one compare-and-swap against the lease's generation (cell.ts): a lease that
  // ended meanwhile, its cell perhaps another's by now, is left alone.
  if (outcome === 'renewed' && answeredAt < abortAtOf(sentAt, watch.leaseMs)) {
    const proven = whileOurs(watch.cell, watch.generation, () => {
      prove(watch.cell, now);
      proveReply(watch.cell, answeredAt);
      countRenewal(watch.cell);
    });
    if (!proven) {
      watched.delete(id);
      return;
    }
  } else if (outcome === 'refused') {
    if (refuse(watch.cell, watch.generation)) send({ type: 'refused', id });
    watched.delete(id);
    return;
  }
  watch.lookAt = nextLook(watch, performance.now());
}
