import type { KeyNames } from '../keys.js';
import type { RenewerConnection } from './connection.js';

/** What the standby renewer's thread starts with (workerData). */
export interface ThreadConfig {
  /** One per master: one on a single Redis or a Cluster, each quorum master's otherwise. */
  connections: RenewerConnection[];
  redisTimeoutMs: number;
  /** The leader thread's last sign of life (cell.ts). */
  heartbeat: BigInt64Array;
  /** How often the leader's thread beats while it leads. */
  beatMs: number;
  /** Stalled longer than this, it counts as wedged: no more renewals for it. */
  maxStallMs: number;
}

export type ToThread =
  | {
      type: 'watch';
      id: number;
      cell: BigInt64Array;
      names: KeyNames;
      leaseValue: string;
      leaseMs: number;
    }
  | { type: 'unwatch'; id: number };

export type ToMain = { type: 'ready' } | { type: 'refused'; id: number };
