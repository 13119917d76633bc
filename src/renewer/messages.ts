import type { RenewerConnection } from './connection.js';

/** What the standby renewer's thread starts with (workerData). */
export interface ThreadConfig {
  /** One per master: one on a single Redis or a Cluster, each quorum master's otherwise. */
  connections: RenewerConnection[];
  redisTimeoutMs: number;
  /** The leader thread's last sign of life (cell.ts). */
  heartbeat: BigInt64Array;
  /** The pool's memory: every watched lease's cell (cell.ts, CellPool). */
  cells: SharedArrayBuffer;
  /** Where leads record their leases for the thread to drain (ring.ts). */
  ring: SharedArrayBuffer;
  /** How often the leader's thread beats while it leads. */
  beatMs: number;
  /** Stalled longer than this, it counts as wedged: no more renewals for it. */
  maxStallMs: number;
}

/**
 * A lease to stand by for, when the ring (ring.ts) had no room for it or the pool no cell: [id, its
 * cell (a slot of the pool, or a cell of its own), the cell's generation, the key, its lease key, the
 * lease value, leaseMs]. The watch ends when the cell is no longer RUNNING for that generation: no
 * message for that.
 */
export type ToThread = [
  id: number,
  cell: number | BigInt64Array,
  generation: number,
  key: string,
  leaseKey: string,
  leaseValue: string,
  leaseMs: number,
];

export type ToMain = { type: 'ready' } | { type: 'refused'; id: number };
