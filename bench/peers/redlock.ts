import type { Redis } from 'ioredis';
import Redlock, { ExecutionError, type Settings } from 'redlock';
import { connect, disconnect } from './connect.js';
import type { Peer, PeerOptions } from './peer.js';

/** The two redlock packages share an API; this is the part the pattern needs. */
interface RedlockLike {
  using<T>(resources: string[], duration: number, routine: () => Promise<T>): Promise<T>;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

/** redlock@5.0.0-beta.2 with its default retries (10 retries, 200 ± 100 ms apart). */
export function createRedlockPeer(options: PeerOptions): Promise<Peer> {
  return doubleChecked(
    options,
    (client) => new Redlock([client]) as unknown as RedlockLike,
    (error) => error instanceof ExecutionError,
  );
}

/** The same, tuned the way people tune it for latency: a short retry delay. */
export function createTunedRedlockPeer(options: PeerOptions): Promise<Peer> {
  const settings: Partial<Settings> = { retryDelay: 10, retryJitter: 5 };
  return doubleChecked(
    options,
    (client) => new Redlock([client], settings) as unknown as RedlockLike,
    (error) => error instanceof ExecutionError,
  );
}

/**
 * The double-checked pattern people write around a lock:
 *
 *   GET done → hit: return
 *   redlock.using(lock, leaseMs, …)  (acquire with the library's retries; auto-extended while held)
 *     → GET done again → hit: return → fn → SET done
 *   the lock stayed busy through every retry (ExecutionError) → go round: GET done, try again
 *
 * `using` is the form redlock's README leads with; it extends the lock while fn runs, so a fn longer
 * than the lease is not run twice by design. Its AbortSignal is not consulted: fn is the user's init,
 * which knows nothing of the lock (and checking would only fail this caller, not stop a second run).
 */
async function doubleChecked(
  options: PeerOptions,
  make: (client: Redis) => RedlockLike,
  isBusy: (error: unknown) => boolean,
): Promise<Peer> {
  const client = await connect(options.redisUrl);
  const redlock = make(client);
  // Redlock emits every refused vote as an 'error' event; unhandled, that would crash the process.
  redlock.on('error', () => {});
  const { leaseMs, namespace } = options;

  async function initOnce<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const done = `${namespace}:${key}:done`;
    const lock = `${namespace}:${key}:lock`;
    for (;;) {
      const cached = await client.get(done);
      if (cached !== null) return JSON.parse(cached) as T;
      try {
        return await redlock.using([lock], leaseMs, async () => {
          const again = await client.get(done);
          if (again !== null) return JSON.parse(again) as T;
          const value = await fn();
          await client.set(done, JSON.stringify(value));
          return value;
        });
      } catch (error) {
        if (!isBusy(error)) throw error;
      }
    }
  }

  return { initOnce, close: () => disconnect(client) };
}
