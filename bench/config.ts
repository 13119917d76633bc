import { PEER_IDS, type PeerId } from './peers/peer.js';

export interface Shape {
  processes: number;
  callersPerProcess: number;
}

/** Every knob of one bench run; `--quick` picks smaller ones, and the report prints which. */
export interface BenchConfig {
  quick: boolean;
  reps: number;
  peers: PeerId[];
  s1: { shapes: Shape[]; fnMs: number; leaseMs: number; reps: number };
  s2: { shape: Shape; durations: number[]; leaseMs: number; peers: PeerId[] };
  s3: { shape: Shape; fnMs: number; leaseMs: number; killAfterMs: number };
  /** Warm-loop calls; peers that read Redis on every call stop after `peerMaxMs` instead. */
  s4: { calls: number; peerMaxMs: number };
  s5: { keys: number; concurrency: number };
}

/**
 * Full: about three and a half minutes on two cores. S1 repeats five times (its tails are the noisiest
 * numbers), the rest three. The time goes to the polling peers' tails (a redlock waiter may sleep
 * 2 s before it looks again) and to S2's 3 s fn, so @sesamecare-oss/redlock, which behaves like
 * redlock's defaults there, sits out S2.
 */
const FULL: BenchConfig = {
  quick: false,
  reps: 3,
  peers: [...PEER_IDS],
  s1: {
    shapes: [
      { processes: 4, callersPerProcess: 25 },
      { processes: 8, callersPerProcess: 125 },
    ],
    fnMs: 500,
    leaseMs: 2_000,
    reps: 5,
  },
  s2: {
    shape: { processes: 4, callersPerProcess: 25 },
    durations: [100, 1_000, 3_000],
    leaseMs: 2_000,
    peers: [...PEER_IDS],
  },
  s3: { shape: { processes: 4, callersPerProcess: 25 }, fnMs: 2_000, leaseMs: 2_000, killAfterMs: 200 },
  s4: { calls: 2_000_000, peerMaxMs: 500 },
  s5: { keys: 5_000, concurrency: 64 },
};

/**
 * Quick (under a minute): one repetition, 1,000 callers only, two fn durations, a 1 s lease and fn in
 * S3, fewer calls and keys in S4 and S5.
 */
const QUICK: BenchConfig = {
  ...FULL,
  quick: true,
  reps: 1,
  s1: { ...FULL.s1, shapes: [{ processes: 8, callersPerProcess: 125 }], reps: 1 },
  s2: { ...FULL.s2, durations: [100, 1_000] },
  s3: { ...FULL.s3, fnMs: 1_000, leaseMs: 1_000 },
  s4: { calls: 500_000, peerMaxMs: 200 },
  s5: { keys: 2_000, concurrency: 64 },
};

export function configFrom(argv: string[]): BenchConfig {
  const config = argv.includes('--quick') ? QUICK : FULL;
  const only = argv.find((arg) => arg.startsWith('--peers='))?.slice('--peers='.length);
  if (!only) return config;
  const peers = only.split(',').map((id) => {
    if (!(PEER_IDS as readonly string[]).includes(id))
      throw new Error(`unknown peer "${id}": ${PEER_IDS.join(', ')}`);
    return id as PeerId;
  });
  if (!peers.includes('redis-once')) peers.unshift('redis-once'); // every ratio is to redis-once
  return {
    ...config,
    peers,
    s2: { ...config.s2, peers: config.s2.peers.filter((id) => peers.includes(id)) },
  };
}
