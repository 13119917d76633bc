import { once } from 'node:events';
import net from 'node:net';

/**
 * A loopback port that was free a moment ago: nothing listens on it now (so it also serves as a
 * "closed port"), though a server started on it may still lose it to someone else. Shared by the
 * tests, the demo and the benchmark, which all start their own redis-server processes.
 */
export async function freePort(): Promise<number> {
  const probe = net.createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as net.AddressInfo;
  probe.close();
  await once(probe, 'close');
  return port;
}
