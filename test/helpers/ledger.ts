/**
 * An independent ledger for the fault suite: a small HTTP server in the test process (loopback) that
 * every fn writes to as its last step. It accepts a write only with the highest fencing token it has
 * seen for the key (as a database guarded by the token would), and refuses a lower one: a stale
 * leader's write. It knows nothing of Redis, so it checks the library from outside.
 */
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LedgerWrite {
  key: string;
  token: number;
  by: string;
}

export interface Ledger {
  readonly url: string;
  /** Writes accepted for `key`, in order. */
  accepted(key: string): LedgerWrite[];
  /** Writes refused (a token below the highest seen) for `key`, or for every key. */
  refused(key?: string): LedgerWrite[];
  close(): Promise<void>;
}

export async function startLedger(): Promise<Ledger> {
  const highest = new Map<string, number>();
  const accepted: LedgerWrite[] = [];
  const refused: LedgerWrite[] = [];
  const server = http.createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (body += chunk));
    request.on('end', () => {
      let write: LedgerWrite;
      try {
        write = JSON.parse(body) as LedgerWrite;
      } catch {
        response.writeHead(400).end();
        return;
      }
      const ok = write.token >= (highest.get(write.key) ?? 0);
      if (ok) {
        highest.set(write.key, write.token);
        accepted.push(write);
      } else {
        refused.push(write);
      }
      response.writeHead(ok ? 200 : 409, { connection: 'close' }).end(JSON.stringify({ accepted: ok }));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/write`,
    accepted: (key) => accepted.filter((w) => w.key === key),
    refused: (key) => (key === undefined ? [...refused] : refused.filter((w) => w.key === key)),
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

/** One write to the ledger (no keep-alive: a worker must be able to exit right after). */
export function writeLedger(url: string, write: LedgerWrite): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method: 'POST', agent: false }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode === 200));
    });
    request.on('error', reject);
    request.end(JSON.stringify(write));
  });
}
