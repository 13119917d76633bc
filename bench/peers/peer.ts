/**
 * What every library under test is reduced to: "run fn once for key, cluster-wide, and give every
 * caller its value". Each implementation uses its library the way that library's docs say.
 */
export interface Peer {
  initOnce<T>(key: string, fn: () => Promise<T>): Promise<T>;
  /** Ends every timer and connection the peer opened, so the worker can take the next job. */
  close(): Promise<void>;
}

export interface PeerOptions {
  redisUrl: string;
  /** Lock / lease TTL: a scenario parameter, the same for every peer. */
  leaseMs: number;
  /** Prefix of every key the peer writes, so runs never see each other's state. */
  namespace: string;
}

export const PEER_IDS = ['redis-once', 'ideal', 'redlock', 'redlock-tuned', 'semaphore'] as const;
export type PeerId = (typeof PEER_IDS)[number];

export interface PeerInfo {
  /** Short name used in tables and charts. */
  label: string;
  /** The npm package whose version the report prints; undefined for the raw-ioredis bound. */
  pkg: string | undefined;
  /** One line on how it coordinates, for the report. */
  how: string;
}

export const PEERS: Record<PeerId, PeerInfo> = {
  'redis-once': {
    label: 'redis-once',
    pkg: undefined, // this repository
    how: 'createOnce({ redis, leaseMs }).run(key, fn): local memo, lease, Lua state, pub/sub wake-up',
  },
  ideal: {
    label: 'ideal (raw ioredis)',
    pkg: 'ioredis',
    how: 'per caller, no memo: GET done → SET NX PX → SUBSCRIBE → GET done + PTTL → wait for the PUBLISH (at the lease deadline: GET + PTTL again)',
  },
  redlock: {
    label: 'redlock (defaults)',
    pkg: 'redlock',
    how: 'GET done → redlock.using(lock, leaseMs) {GET done → fn → SET done}; busy: retry 10× every 200±100 ms, then loop',
  },
  'redlock-tuned': {
    label: 'redlock (10 ms retry)',
    pkg: 'redlock',
    how: 'as redlock, with retryDelay 10 ms, retryJitter 5 ms (retryCount default 10)',
  },
  semaphore: {
    label: 'redis-semaphore Mutex',
    pkg: 'redis-semaphore',
    how: 'GET done → new Mutex(client, key, { lockTimeout: leaseMs }).acquire() (polls every 10 ms) → GET done → fn → SET done → release',
  },
};
