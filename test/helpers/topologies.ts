/** Test topologies built from real redis-server processes, and a port with nothing behind it. */
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
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
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
