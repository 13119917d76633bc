/** Test topologies built from real redis-server processes, and a port with nothing behind it. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { freePort } from '../../scripts/free-port.js';
import { waitFor } from './gate.js';
import { type RedisServer, startRedis } from './redis-server.js';

/**
 * Three masters, all 16,384 slots assigned: the smallest real Redis Cluster; with `replicas: 1`, one
 * replica each (six nodes, the masters first), so a killed master's replica is promoted.
 */
export async function startCluster(name: string, { replicas = 0 } = {}): Promise<RedisServer[]> {
  const nodes = await Promise.all(
    Array.from({ length: 3 * (1 + replicas) }, (_, i) =>
      startRedis({
        name: `${name}-${i + 1}`,
        // Replicas sync at once (no 5 s diskless delay), so a master may die right after the start.
        args: [
          '--cluster-enabled',
          'yes',
          '--cluster-node-timeout',
          '2000',
          '--repl-diskless-sync-delay',
          '0',
        ],
      }),
    ),
  );
  await promisify(execFile)('redis-cli', [
    '--cluster',
    'create',
    ...nodes.map((n) => `${n.host}:${n.port}`),
    '--cluster-replicas',
    String(replicas),
    '--cluster-yes',
  ]);
  const admin = nodes[0]!.client();
  try {
    await waitFor(async () => (await admin.cluster('INFO')).includes('cluster_state:ok'), {
      timeoutMs: 15_000,
      what: 'the cluster to be ok',
    });
    // A replica that has not synced would not be promoted: wait until every one is linked.
    for (const node of nodes) {
      const client = node.client();
      await waitFor(
        async () => {
          const info = await client.info('replication');
          return info.includes('role:master') || info.includes('master_link_status:up');
        },
        { timeoutMs: 15_000, what: `${node.name} to sync with its master` },
      );
    }
  } finally {
    admin.disconnect();
  }
  return nodes;
}

/** A loopback port with nothing listening on it. */
export const closedPort = freePort;
