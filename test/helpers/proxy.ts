/**
 * A TCP proxy between a client and Redis (node:net, loopback only) whose behaviour is switched at run
 * time, to put a real network fault between a process and a real redis-server:
 *
 *   pass        forward bytes as they come
 *   delay(ms)   hold every chunk, both ways, for `ms` before forwarding it (a slow link)
 *   blackhole   accept and read, never forward or answer (a partition that drops packets)
 *   refuse      close new connections at once (existing ones keep their mode)
 *   cut()       close every open connection now (a connection reset)
 *
 * `url` is a redis:// URL of the proxy. Every socket and timer is closed by `close()`.
 */
import net from 'node:net';

export type ProxyMode =
  | { kind: 'pass' }
  | { kind: 'delay'; ms: number }
  | { kind: 'blackhole' }
  | { kind: 'refuse' };

export interface FaultProxy {
  readonly port: number;
  readonly url: string;
  /** Connections accepted so far (refused ones included). */
  readonly accepted: number;
  /** Open connection pairs. */
  readonly open: number;
  set(mode: ProxyMode): void;
  cut(): void;
  close(): Promise<void>;
}

export async function startProxy(target: { host: string; port: number }, db?: number): Promise<FaultProxy> {
  let mode: ProxyMode = { kind: 'pass' };
  let accepted = 0;
  const pairs = new Set<{ client: net.Socket; server: net.Socket }>();
  const timers = new Set<NodeJS.Timeout>();

  const forward = (from: net.Socket, to: net.Socket) => {
    from.on('data', (chunk: Buffer) => {
      const now = mode;
      if (now.kind === 'blackhole') return;
      if (now.kind === 'delay') {
        const timer = setTimeout(() => {
          timers.delete(timer);
          if (!to.destroyed) to.write(chunk);
        }, now.ms);
        timers.add(timer);
        return;
      }
      if (!to.destroyed) to.write(chunk);
    });
  };

  const server = net.createServer((client) => {
    accepted++;
    if (mode.kind === 'refuse') {
      client.destroy();
      return;
    }
    const upstream = net.connect(target.port, target.host);
    const pair = { client, server: upstream };
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    forward(client, upstream);
    forward(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;

  const cut = () => {
    for (const pair of [...pairs]) {
      pair.client.destroy();
      pair.server.destroy();
    }
    pairs.clear();
  };
  return {
    port,
    url: `redis://127.0.0.1:${port}${db === undefined ? '' : `/${db}`}`,
    get accepted() {
      return accepted;
    },
    get open() {
      return pairs.size;
    },
    set(next) {
      mode = next;
    },
    cut,
    async close() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
