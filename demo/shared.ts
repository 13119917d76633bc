/** What the demo and its pods share: the pod's configuration, its messages, the migration's steps. */

export interface PodConfig {
  url: string;
  namespace: string;
  key: string;
  nodeId: string;
  leaseMs: number;
  /** The JSON file standing in for the database. */
  dbFile: string;
  stepMs: number;
}

export type PodMessage =
  | { type: 'ready' }
  | { type: 'leading'; fencingToken: number; attempt: number }
  | { type: 'step'; step: number; of: number }
  | { type: 'result'; role: string; waitedMs: number; fencingToken: number; attempt: number }
  | { type: 'error'; name: string; message: string };

export const STEPS = [
  'create table accounts',
  'add column accounts.email',
  'backfill accounts.email (10,000 rows)',
  'create index accounts_email_idx',
];
