/**
 * A TCP proxy between a client and Redis (node:net, loopback only) whose behaviour is switched at run
 * time, to put a real network fault between a process and a real redis-server:
 *
 *   pass        forward bytes as they come
 *   delay(ms)   hold every chunk, both ways, for `ms` before forwarding it (a slow link)
 *   blackhole   accept and read, forward nothing until the mode changes (a partition: what was sent
 *               meanwhile arrives when it heals, as TCP resends it — unless the connection is cut)
 *   mute        forward requests to Redis, drop its replies (a reply lost on the way back; the
 *               stream is broken from then on: follow it with a cut or a kill)
 *   refuse      close new connections at once (existing ones keep their mode)
 *   cut()       close every open connection now (a connection reset)
 *
 * Each direction of a connection is one ordered stream, as on a real network: a chunk never overtakes
 * one sent before it, whatever the mode did meanwhile. `url` is a redis:// URL of the proxy. Every
 * socket and timer is closed by `close()`.
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
  interface Lane {
    /** Chunks not yet forwarded, in order, each with when it may go. */
    queue: Array<{ chunk: Buffer; at: number }>;
    timer: NodeJS.Timeout | undefined;
  }
  interface Pair {
    client: net.Socket;
    server: net.Socket;
    request: Lane;
    reply: Lane;
    closing: boolean;
    finish(): void;
  }
  const pairs = new Set<Pair>();
  let requests = 0;
  const requestLog: Array<{ n: number; text: string }> = [];
  const timers = new Set<NodeJS.Timeout>();

  /** Forwards `lane`'s chunks in order, each once its time has come, while the link is not cut off. */
  const pump = (lane: Lane, to: net.Socket, pair: Pair) => {
    clearTimeout(lane.timer);
    lane.timer = undefined;
    while (lane.queue.length > 0) {
      if (mode.kind === 'blackhole') return; // held: set() pumps again when the partition heals
      const head = lane.queue[0]!;
      const wait = head.at - performance.now();
      if (wait > 0) {
        const timer = setTimeout(() => {
          timers.delete(timer);
          pump(lane, to, pair);
        }, Math.ceil(wait));
        timers.add(timer);
        lane.timer = timer;
        return;
      }
      lane.queue.shift();
      if (!to.destroyed) to.write(head.chunk);
    }
    if (pair.closing && pair.request.queue.length === 0 && pair.reply.queue.length === 0) pair.finish();
  };

  const forward = (from: net.Socket, to: net.Socket, direction: 'request' | 'reply', pair: Pair) => {
    const lane = pair[direction];
    from.on('data', (chunk: Buffer) => {
      if (direction === 'request') {
        requests++;
        requestLog.push({ n: requests, text: chunk.toString('latin1') });
        if (requestLog.length > 100) requestLog.shift();
      }
      if (mode.kind === 'mute' && direction === 'reply') return;
      const at = performance.now() + (mode.kind === 'delay' ? mode.ms : 0);
      lane.queue.push({ chunk, at: Math.max(at, lane.queue.at(-1)?.at ?? 0) });
      if (!lane.timer) pump(lane, to, pair);
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
      request: { queue: [], timer: undefined },
      reply: { queue: [], timer: undefined },
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
    // sender is gone; then the other side is closed too. Behind a partition, it is lost with it.
    const end = () => {
      pair.closing = true;
      if (mode.kind === 'blackhole') {
        pair.request.queue.length = 0;
        pair.reply.queue.length = 0;
      }
      if (pair.request.queue.length === 0 && pair.reply.queue.length === 0) pair.finish();
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
      for (const lane of [pair.request, pair.reply]) {
        clearTimeout(lane.timer);
        lane.queue.length = 0;
      }
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
      for (const pair of pairs) {
        pump(pair.request, pair.server, pair);
        pump(pair.reply, pair.client, pair);
      }
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
