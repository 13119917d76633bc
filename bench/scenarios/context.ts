import type { BenchConfig } from '../config.js';
import type { PeerId } from '../peers/peer.js';
import type { RedisServer } from '../server.js';
import type { WorkerPool } from '../workers.js';

/** A run in which fn did not run exactly once per key: recorded, reported, never thrown. */
export interface Violation {
  scenario: string;
  peer: PeerId;
  rep: number;
  detail: string;
}

export interface Context {
  server: RedisServer;
  pool: WorkerPool;
  config: BenchConfig;
  /** One line per measured run, to stderr, so a long bench shows it is alive. */
  progress(line: string): void;
  violation(violation: Violation): void;
}

/** Appends one repetition's outcome to a per-peer list, creating the list on first use. */
export function record<T>(byPeer: Partial<Record<PeerId, T[]>>, peer: PeerId, value: T): void {
  const list = byPeer[peer] ?? [];
  list.push(value);
  byPeer[peer] = list;
}
