import type { Peer, PeerId, PeerOptions } from './peer.js';

/**
 * Loads only the library a job needs: a worker measuring one peer does not also carry the others'
 * modules (and the parent, which never runs a peer, loads none).
 */
export async function createPeer(id: PeerId, options: PeerOptions): Promise<Peer> {
  switch (id) {
    case 'redis-once':
      return (await import('./redis-once.js')).createRedisOncePeer(options);
    case 'ideal':
      return (await import('./ideal.js')).createIdealPeer(options);
    case 'redlock':
      return (await import('./redlock.js')).createRedlockPeer(options);
    case 'redlock-tuned':
      return (await import('./redlock.js')).createTunedRedlockPeer(options);
    case 'semaphore':
      return (await import('./semaphore.js')).createSemaphorePeer(options);
  }
}
