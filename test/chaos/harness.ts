/**
 * What the worker-process fault tests share: a redis-server and a fencing ledger per file, worker
 * configurations writing to that ledger, fault proxies closed after each test, and the ledger's
 * figures for docs/RELIABILITY.md.
 */
import { afterAll, afterEach, beforeAll } from 'vitest';
import { type Ledger, startLedger } from '../helpers/ledger.js';
import { type FaultProxy, startProxy } from '../helpers/proxy.js';
import { type RedisServer, startRedis } from '../helpers/redis-server.js';
import { killAllWorkers, type WorkerConfig } from '../helpers/worker.js';

/** The key every worker of these tests runs. */
export const KEY = 'migrate';

export interface FaultHarness {
  readonly redis: RedisServer;
  readonly ledger: Ledger;
  /** A worker of `namespace` named `nodeId`: 3 callers, fn 100 ms, ledger writes, warmed up. */
  config(namespace: string, nodeId: string, extra?: Partial<WorkerConfig>): WorkerConfig;
  /** A fault proxy in front of the server, closed after the test. */
  proxy(): Promise<FaultProxy>;
  /** What the ledger saw for the namespace's key: fn bodies that ran to their end, and stale writes. */
  ledgerFigures(namespace: string): { executions: number; staleRefused: number };
}

/** Registers the file's hooks; `defaults` apply to every worker configuration. */
export function faultHarness(name: string, defaults: Partial<WorkerConfig>): FaultHarness {
  let redis: RedisServer;
  let ledger: Ledger;
  const proxies: FaultProxy[] = [];
  beforeAll(async () => {
    [redis, ledger] = await Promise.all([startRedis({ name }), startLedger()]);
  });
  afterEach(async () => {
    await killAllWorkers();
    await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
  });
  afterAll(async () => {
    await Promise.all([redis.stop(), ledger.close()]);
  });
  return {
    get redis() {
      return redis;
    },
    get ledger() {
      return ledger;
    },
    config: (namespace, nodeId, extra = {}) => ({
      url: redis.url,
      namespace,
      key: KEY,
      nodeId,
      callers: 3,
      fnMs: 100,
      ledgerUrl: ledger.url,
      warmUp: true,
      ...defaults,
      ...extra,
    }),
    async proxy() {
      const started = await startProxy(redis);
      proxies.push(started);
      return started;
    },
    ledgerFigures(namespace) {
      const key = `${namespace}:${KEY}`;
      return {
        executions: ledger.accepted(key).length + ledger.refused(key).length,
        staleRefused: ledger.refused(key).length,
      };
    },
  };
}
