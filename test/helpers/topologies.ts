/** Test topologies built from real redis-server processes, and a port with nothing behind it. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { freePort } from '../../scripts/free-port.js';
import { waitFor } from './gate.js';
import { type RedisServer, startRedis } from './redis-server.js';

/** Three masters, no replicas, all 16,384 slots assigned: the smallest real Redis Cluster. */
export async function startCluster(name: string): Promise<RedisServer[]> {
  const nodes = await Promise.all(
    [1, 2, 3].map((i) =>
      startRedis({
        name: `${name}-${i}`,
        args: ['--cluster-enabled', 'yes', '--cluster-node-timeout', '2000'],
      }),
    ),
  );
  await promisify(execFile)('redis-cli', [
    '--cluster',
    'create',
    ...nodes.map((n) => `${n.host}:${n.port}`),
    '--cluster-yes',
  ]);
  const admin = nodes[0]!.client();
  try {
    await waitFor(async () => (await admin.cluster('INFO')).includes('cluster_state:ok'), {
      timeoutMs: 15_000,
      what: 'the cluster to be ok',
    });
  } finally {
    admin.disconnect();
  }
  return nodes;
}

/** A loopback port with nothing listening on it. */
export const closedPort = freePort;
