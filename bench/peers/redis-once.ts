import { createOnce } from '../../src/index.js';
import { connect, disconnect } from './connect.js';
import type { Peer, PeerOptions } from './peer.js';

/** redis-once as its README shows it: one Once per process, given the application's client. */
export async function createRedisOncePeer(options: PeerOptions): Promise<Peer> {
  const client = await connect(options.redisUrl);
  const once = createOnce({ redis: client, leaseMs: options.leaseMs, namespace: options.namespace });
  return {
    // once.run's own promise, not another async layer: the cached path is measured as users call it.
    initOnce: (key, fn) => once.run(key, fn),
    async close() {
      await once.close();
      await disconnect(client);
    },
  };
}
