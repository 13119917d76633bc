import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';

/**
 * Every library under test, reduced to "run fn once for key, cluster-wide, and give every caller its
 * value", each used the way its README shows. Libraries are imported when a peer is created, so a
 * worker loads only the one it measures.
 */
export interface Peer {
  initOnce<T>(key: string, fn: () => Promise<T>): Promise<T>;
}

export interface PeerOptions {
  redisUrl: string;
  /** Lock / lease TTL: a scenario parameter, the same for every peer. */
  leaseMs: number;
  /** Prefix of every key the peer writes, so runs never see each other's state. */
  namespace: string;
}

export const PEERS = {
  'redis-once': {
    label: 'redis-once',
    pkg: undefined,
    how: 'createOnce({ redis, leaseMs }).run(key, fn)',
  },
  'no-standby': {
    label: 'redis-once (maxStallMs 0)',
    pkg: undefined,
    how: 'createOnce({ redis, leaseMs, maxStallMs: 0 }).run(key, fn): no standby renewer, leases renew on the main thread only (S6)',
  },
  ideal: {
    label: 'ideal pub/sub',
    pkg: 'ioredis',
    how: 'hand-written on raw ioredis, per caller, no memo: GET done → SET NX PX → SUBSCRIBE → GET done + PTTL → wait for the PUBLISH',
  },
  reference: {
    label: 'SET NX + SET + PUBLISH',
    pkg: 'ioredis',
    how: 'hand-written on raw ioredis, per key: SET lease NX PX → fn → SET done + PUBLISH (one pipeline)',
  },
  redlock: {
    label: 'redlock 5 (defaults)',
    pkg: 'redlock',
    how: 'GET done → redlock.using(lock, leaseMs) { GET done → fn → SET done }; busy after its 10 retries (200 ± 100 ms): again',
  },
  redlock4: {
    label: 'redlock 4 (defaults)',
    pkg: 'redlock4',
    how: 'GET done → redlock.lock(lock, leaseMs) → GET done → fn (lock.extend every lease/2) → SET done → unlock; LockError: again',
  },
  semaphore: {
    label: 'redis-semaphore Mutex',
    pkg: 'redis-semaphore',
    how: 'GET done → new Mutex(client, key, { lockTimeout: leaseMs }).acquire() (polls every 10 ms) → GET done → fn → SET done → release',
  },
} as const;

export type PeerId = keyof typeof PEERS;

export async function createPeer(id: PeerId, options: PeerOptions): Promise<Peer> {
  // A connected client, as an application holds one before it calls any library.
  const client = new Redis(options.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  client.on('error', () => {}); // a run's own errors are reported instead
  await client.connect();
  switch (id) {
    case 'redis-once':
    case 'no-standby': {
      const { createOnce } = await import('../src/index.js');
      const { leaseMs, namespace } = options;
      const maxStallMs = id === 'no-standby' ? 0 : undefined; // undefined: the default, 60 s
      const once = createOnce({ redis: client, leaseMs, namespace, maxStallMs });
      // once.run's own promise, not another async layer: the cached path is measured as users call it.
      return { initOnce: (key, fn) => once.run(key, fn) };
    }
    case 'ideal':
      return ideal(client, options);
    case 'reference':
      return reference(client, options);
    case 'redlock': {
      const { default: Redlock, ExecutionError } = await import('redlock');
      const redlock = new Redlock([client]);
      redlock.on('error', () => {}); // every refused vote is an 'error' event
      return doubleChecked(client, options, async (lock, leaseMs, body) => {
        try {
          return { value: await redlock.using([lock], leaseMs, body) };
        } catch (error) {
          if (error instanceof ExecutionError) return undefined;
          throw error;
        }
      });
    }
    case 'redlock4': {
      const { default: Redlock } = await import('redlock4');
      const redlock = new Redlock([client]);
      return doubleChecked(client, options, async (resource, leaseMs, body) => {
        let lock: Awaited<ReturnType<typeof redlock.lock>>;
        try {
          lock = await redlock.lock(resource, leaseMs);
        } catch (error) {
          if (error instanceof Redlock.LockError) return undefined;
          throw error;
        }
        const extend = setInterval(() => {
          lock.extend(leaseMs).then(
            (extended) => (lock = extended),
            () => {},
          );
        }, leaseMs / 2);
        try {
          return { value: await body() };
        } finally {
          clearInterval(extend);
          await lock.unlock().catch(() => {});
        }
      });
    }
    case 'semaphore': {
      const { Mutex, TimeoutError } = await import('redis-semaphore');
      return doubleChecked(client, options, async (resource, leaseMs, body) => {
        const mutex = new Mutex(client, resource, { lockTimeout: leaseMs });
        try {
          await mutex.acquire();
        } catch (error) {
          if (error instanceof TimeoutError) return undefined; // held past acquireTimeout
          throw error;
        }
        try {
          return { value: await body() };
        } finally {
          await mutex.release();
        }
      });
    }
  }
}

/** Runs `body` holding the lock; undefined when the lock stayed busy through the library's retries. */
type WithLock = <T>(
  resource: string,
  leaseMs: number,
  body: () => Promise<T>,
) => Promise<{ value: T } | undefined>;

/**
 * The double-checked pattern people write around a lock: GET done → hit: return; else take the lock
 * (with the library's own retries) → GET done again → fn → SET done; lock still busy: go round.
 */
function doubleChecked(client: Redis, { leaseMs, namespace }: PeerOptions, withLock: WithLock): Peer {
  return {
    async initOnce<T>(key: string, fn: () => Promise<T>): Promise<T> {
      const done = `${namespace}:${key}:done`;
      for (;;) {
        const cached = await client.get(done);
        if (cached !== null) return JSON.parse(cached) as T;
        const held = await withLock(`${namespace}:${key}:lock`, leaseMs, async () => {
          const again = await client.get(done);
          if (again !== null) return JSON.parse(again) as T;
          const value = await fn();
          await client.set(done, JSON.stringify(value));
          return value;
        });
        if (held) return held.value;
      }
    },
  };
}

/** The S5 reference: the fewest commands a key can cost (it never waits: S5's keys are distinct). */
function reference(client: Redis, { leaseMs, namespace }: PeerOptions): Peer {
  return {
    async initOnce<T>(key: string, fn: () => Promise<T>): Promise<T> {
      const done = `${namespace}:{${key}}:done`;
      const token = randomBytes(8).toString('hex');
      if ((await client.set(`${namespace}:{${key}}:lease`, token, 'PX', leaseMs, 'NX')) !== 'OK')
        throw new Error(`reference: ${key} is taken (S5 keys are distinct)`);
      const value = await fn();
      const json = JSON.stringify(value);
      await client.pipeline().set(done, json).publish(done, json).exec();
      return value;
    },
  };
}

/** Compare-and-extend: only the holder may renew its lease. */
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;

/**
 * The S1 lower bound: what raw ioredis allows with no memo and no library, each caller on its own.
 *
 *   GET done → hit: return
 *   SET lease NX PX → won: GET done again → fn (renewing the lease) → SET done + PUBLISH (one write)
 *                   → lost: SUBSCRIBE → GET done + PTTL lease (one write) → wait for the message;
 *                     at the lease deadline look again (GET + PTTL); a lease gone: try to take over
 *
 * Subscribing before the re-check is what makes it correct: a PUBLISH can never fall between. The
 * process shares one subscriber connection, but every caller sends its own SUBSCRIBE (no memo).
 */
async function ideal(client: Redis, { leaseMs, namespace }: PeerOptions): Promise<Peer> {
  const subscriber = client.duplicate();
  subscriber.on('error', () => {});
  await subscriber.connect(); // duplicate() inherits lazyConnect
  const channels = new Channels(subscriber);
  return {
    async initOnce<T>(key: string, fn: () => Promise<T>): Promise<T> {
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
          }
        } finally {
          watch.close();
        }
      }
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
    const listeners = this.listeners.get(channel) ?? new Set();
    this.listeners.set(channel, listeners);
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
