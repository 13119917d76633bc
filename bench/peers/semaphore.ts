import { Mutex, TimeoutError } from 'redis-semaphore';
import { connect, disconnect } from './connect.js';
import type { Peer, PeerOptions } from './peer.js';

/**
 * redis-semaphore's Mutex with its defaults (retry every 10 ms, acquireTimeout 10 s, refresh at 80 %
 * of lockTimeout), in the same double-checked pattern as redlock. Only lockTimeout is set: it is the
 * scenario's lease, the same for every peer.
 */
export async function createSemaphorePeer(options: PeerOptions): Promise<Peer> {
  const client = await connect(options.redisUrl);
  const { leaseMs, namespace } = options;

  async function initOnce<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const done = `${namespace}:${key}:done`;
    for (;;) {
      const cached = await client.get(done);
      if (cached !== null) return JSON.parse(cached) as T;
      const mutex = new Mutex(client, `${namespace}:${key}`, { lockTimeout: leaseMs });
      try {
        await mutex.acquire();
      } catch (error) {
        if (error instanceof TimeoutError) continue; // still held after acquireTimeout: check again
        throw error;
      }
      try {
        const again = await client.get(done);
        if (again !== null) return JSON.parse(again) as T;
        const value = await fn();
        await client.set(done, JSON.stringify(value));
        return value;
      } finally {
        await mutex.release();
      }
    }
  }

  return { initOnce, close: () => disconnect(client) };
}
