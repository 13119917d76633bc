import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { connect, disconnect } from './connect.js';
import type { Peer, PeerOptions } from './peer.js';

/** Compare-and-extend: only the holder may renew its lease. */
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;

/**
 * The lower bound: what raw ioredis allows with no memo and no library, each caller on its own.
 *
 *   GET done → hit: return
 *   SET lease NX PX → won: GET done again → fn (renewing the lease) → SET done + PUBLISH (one write)
 *                   → lost: SUBSCRIBE → GET done + PTTL lease (one write) → wait for the message;
 *                     at the lease deadline look again (GET + PTTL); a lease gone: try to take over
 *
 * Subscribing before the re-check is what makes it correct: a PUBLISH can never fall between. The
 * process shares one subscriber connection, but every caller sends its own SUBSCRIBE (no memo).
 */
export async function createIdealPeer(options: PeerOptions): Promise<Peer> {
  const client = await connect(options.redisUrl);
  const subscriber = await connect(options.redisUrl);
  const channels = new Channels(subscriber);
  const { leaseMs, namespace } = options;

  async function initOnce<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const done = `${namespace}:{${key}}:done`;
    const lease = `${namespace}:{${key}}:lease`;
    for (;;) {
      const cached = await client.get(done);
      if (cached !== null) return JSON.parse(cached) as T;

      const token = randomBytes(8).toString('hex');
      if ((await client.set(lease, token, 'PX', leaseMs, 'NX')) === 'OK') {
        const again = await client.get(done); // a leader may have finished between our GET and SET
        if (again !== null) return JSON.parse(again) as T;
        const renewal = setInterval(
          () => void client.eval(RENEW, 1, lease, token, leaseMs).catch(() => {}),
          leaseMs / 3,
        );
        try {
          const value = await fn();
          const json = JSON.stringify(value);
          await client.pipeline().set(done, json).publish(done, json).exec();
          return value;
        } finally {
          clearInterval(renewal);
        }
      }

      // Subscribed first, then every check: a PUBLISH can never fall between a check and the wait.
      const watch = await channels.watch(done);
      try {
        for (;;) {
          const [[, value], [, pttl]] = (await client.pipeline().get(done).pttl(lease).exec()) as [
            [unknown, string | null],
            [unknown, number],
          ];
          if (value !== null) return JSON.parse(value) as T;
          if (pttl <= 0) break; // the lease ended without a value: its leader died; try to take over
          const message = await watch.next(pttl + 2);
          if (message !== undefined) return JSON.parse(message) as T;
          // The lease deadline passed with no message: the leader may have renewed it; look again.
        }
      } finally {
        watch.close();
      }
    }
  }

  return {
    initOnce,
    async close() {
      await disconnect(subscriber);
      await disconnect(client);
    },
  };
}

/** One subscriber connection per process, fanning messages out to the callers watching a channel. */
class Channels {
  private readonly listeners = new Map<string, Set<(message: string) => void>>();

  constructor(private readonly subscriber: Redis) {
    subscriber.on('message', (channel: string, message: string) => {
      for (const listener of this.listeners.get(channel) ?? []) listener(message);
    });
  }

  async watch(channel: string): Promise<{ next(ms: number): Promise<string | undefined>; close(): void }> {
    let set = this.listeners.get(channel);
    if (!set) {
      set = new Set();
      this.listeners.set(channel, set);
    }
    const listeners = set;
    let received: string | undefined;
    let wake: (() => void) | undefined;
    const listener = (message: string) => {
      received ??= message;
      wake?.();
    };
    listeners.add(listener);
    await this.subscriber.subscribe(channel);
    return {
      next: (ms) =>
        new Promise((resolve) => {
          if (received !== undefined) return resolve(received);
          const timer = setTimeout(() => resolve(undefined), ms);
          wake = () => {
            clearTimeout(timer);
            resolve(received);
          };
        }),
      close: () => {
        listeners.delete(listener);
        if (listeners.size > 0 || this.listeners.get(channel) !== listeners) return;
        this.listeners.delete(channel);
        this.subscriber.unsubscribe(channel).catch(() => {});
      },
    };
  }
}
