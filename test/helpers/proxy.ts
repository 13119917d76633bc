/**
 * A TCP proxy between a client and Redis (node:net, loopback only) whose behaviour is switched at run
 * time, to put a real network fault between a process and a real redis-server:
 *
 *   pass        forward bytes as they come
 *   delay(ms)   hold every chunk, both ways, for `ms` before forwarding it (a slow link)
 *   blackhole   accept and read, never forward or answer (a partition that drops packets)
 *   mute        forward requests to Redis, drop its replies (a reply lost on the way back)
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
  | { kind: 'mute' }
  | { kind: 'refuse' };

export interface FaultProxy {
  readonly port: number;
  readonly url: string;
  /** Connections accepted so far (refused ones included). */
  readonly accepted: number;
  /** Open connection pairs. */
  readonly open: number;
  /** Chunks received from clients so far (forwarded, delayed or dropped). */
  readonly requests: number;
  /**
   * True when one of the last 100 chunks from a client contained `text` (a script's SHA, say); with
   * `after` (a `requests` count), only the chunks since.
   */
  sent(text: string, after?: number): boolean;
  set(mode: ProxyMode): void;
  cut(): void;
  close(): Promise<void>;
}

export async function startProxy(target: { host: string; port: number }, db?: number): Promise<FaultProxy> {
  let mode: ProxyMode = { kind: 'pass' };
  let accepted = 0;
  interface Pair {
    client: net.Socket;
    server: net.Socket;
    /** Delayed chunks not yet forwarded. */
    inFlight: number;
    closing: boolean;
    finish(): void;
  }
  const pairs = new Set<Pair>();
  let requests = 0;
  const requestLog: Array<{ n: number; text: string }> = [];
  const timers = new Set<NodeJS.Timeout>();

  const forward = (from: net.Socket, to: net.Socket, direction: 'request' | 'reply', pair: Pair) => {
    from.on('data', (chunk: Buffer) => {
      const now = mode;
      if (direction === 'request') {
        requests++;
        requestLog.push({ n: requests, text: chunk.toString('latin1') });
        if (requestLog.length > 100) requestLog.shift();
      }
      if (now.kind === 'blackhole' || (now.kind === 'mute' && direction === 'reply')) return;
      if (now.kind === 'delay') {
        pair.inFlight++;
        const timer = setTimeout(() => {
          timers.delete(timer);
          pair.inFlight--;
          if (!to.destroyed) to.write(chunk);
          if (pair.closing && pair.inFlight === 0) pair.finish();
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
    const pair: Pair = {
      client,
      server: upstream,
      inFlight: 0,
      closing: false,
      finish: () => {
        pairs.delete(pair);
        // end(), not destroy(): what was just written must still go out before the FIN.
        client.end();
        upstream.end();
      },
    };
    pairs.add(pair);
    // As on a real network, what is already on its way (a delayed chunk) still arrives after the
    // sender is gone; then the other side is closed too.
    const end = () => {
      pair.closing = true;
      if (pair.inFlight === 0) pair.finish();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    forward(client, upstream, 'request', pair);
    forward(upstream, client, 'reply', pair);
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
    get requests() {
      return requests;
    },
    sent: (text, after = 0) => requestLog.some((chunk) => chunk.n > after && chunk.text.includes(text)),
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
