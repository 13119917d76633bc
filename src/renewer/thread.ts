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
import { IoredisDriver } from '../drivers/ioredis.js';
import type { KeyNames } from '../keys.js';
import { renew } from '../scripts.js';
import {
  countRenewal,
  endCell,
  lastBeat,
  prove,
  provenSentAt,
  proveReply,
  REFUSED,
  RUNNING,
  stateOf,
} from './cell.js';
import type { RenewerConnection } from './connection.js';
import { abortAtOf, standbyMove } from './decision.js';
import type { ThreadConfig, ToMain, ToThread } from './messages.js';

const config = workerData as ThreadConfig;
const clients = config.connections.map((connection) => open(connection, config.redisTimeoutMs));
const drivers = clients.map((client) => new IoredisDriver(client, true, config.redisTimeoutMs, 'renewer'));
const majority = Math.floor(drivers.length / 2) + 1;
const heartbeat = config.heartbeat;
const watched = new Map<number, Watch>();

interface Watch {
  cell: BigInt64Array;
  names: KeyNames;
  leaseValue: string;
  leaseMs: number;
  /** Without a heartbeat this long, the leader's thread counts as stalled (see `stalledAfter`). */
  stalledAfterMs: number;
  timer: NodeJS.Timeout | undefined;
  renewing: boolean;
}

function open(connection: RenewerConnection, timeoutMs: number): Redis | Cluster {
  // As the connections drivers/index.ts opens (see there why each), connecting at once: a stalled
  // leader cannot wait for a handshake.
  const failFast = {
    enableOfflineQueue: false,
    enableReadyCheck: false,
    disableClientInfo: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 1,
    disconnectTimeout: 200,
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

parentPort!.on('message', (message: ToThread) => {
  if (message.type === 'watch') {
    const watch: Watch = {
      cell: message.cell,
      names: message.names,
      leaseValue: message.leaseValue,
      leaseMs: message.leaseMs,
      stalledAfterMs: stalledAfter(message.leaseMs),
      timer: undefined,
      renewing: false,
    };
    watched.set(message.id, watch);
    schedule(message.id, watch);
  } else if (message.type === 'unwatch') {
    const watch = watched.get(message.id);
    clearTimeout(watch?.timer);
    watched.delete(message.id);
  }
});

/**
 * How long without a heartbeat means stalled, for a lease of `leaseMs`: short enough to act at half the
 * lease, when the leader's own renewal (due at a third) is late; never under two beats, so a leader
 * that is awake — its timers a little late under load — is not taken for a stalled one.
 */
function stalledAfter(leaseMs: number): number {
  return Math.max(2 * config.beatMs, Math.min(1_000, leaseMs / 4));
}

/** The next look at `watch`: when its leader's own renewal is overdue, or sooner. */
function schedule(id: number, watch: Watch): void {
  clearTimeout(watch.timer);
  const due = provenSentAt(watch.cell) + watch.leaseMs / 2;
  // Look again at least this often: the leader may stall, or wake, at any moment. Past due (its
  // leader late, awake or wedged, or a renewal here that failed fast) the rule may say wait for a
  // long while: look at this pace, not at once.
  const every = Math.min(250, watch.leaseMs / 10);
  const now = performance.now();
  const delay = due > now ? Math.min(due - now, every) : every;
  watch.timer = setTimeout(() => void look(id, watch), delay);
  watch.timer.unref();
}

async function look(id: number, watch: Watch): Promise<void> {
  // A renewal on its way reschedules when answered; only timers call this, one per watch at a time.
  if (watched.get(id) !== watch || stateOf(watch.cell) !== RUNNING || watch.renewing) return;
  const now = performance.now();
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
    schedule(id, watch);
    return;
  }
  watch.renewing = true;
  const outcome = await renewOn(watch, move.withinMs);
  watch.renewing = false;
  if (watched.get(id) !== watch) return;
  // Proven only if answered while the lease it extends could still be trusted (lease.ts's rule).
  const answeredAt = performance.now();
  if (outcome === 'renewed' && answeredAt < abortAtOf(sentAt, watch.leaseMs)) {
    prove(watch.cell, now);
    proveReply(watch.cell, answeredAt);
    countRenewal(watch.cell);
  } else if (outcome === 'refused') {
    endCell(watch.cell, REFUSED);
    watched.delete(id);
    send({ type: 'refused', id });
    return;
  }
  schedule(id, watch);
}

/** One renewal on every master; proven by a majority's yes, refused by a majority's no. */
async function renewOn(watch: Watch, withinMs: number): Promise<'renewed' | 'refused' | 'unanswered'> {
  const replies = await Promise.all(
    drivers.map((driver) =>
      within(renew(driver, watch.names, { leaseValue: watch.leaseValue, leaseMs: watch.leaseMs }), withinMs),
    ),
  );
  if (replies.filter((reply) => reply === true).length >= majority) return 'renewed';
  if (replies.filter((reply) => reply === false).length >= majority) return 'refused';
  return 'unanswered';
}

function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    timer.unref();
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      () => {
        clearTimeout(timer);
        resolve(undefined);
      },
    );
  });
}
