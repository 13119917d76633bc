import { Redis } from 'ioredis';
import type { RequestCounts } from './protocol.js';

/**
 * Counts, in a worker, every request any ioredis client sends (the peers' own clients, their
 * duplicates, and redlock's or redis-semaphore's calls through them), by patching the one method
 * they all go through. This is the client's view: one EVALSHA is one request, however many commands
 * its script runs inside Redis (INFO commandstats counts those too).
 */
const ignored = new WeakSet<object>();
let counts: RequestCounts = {};

type SendCommand = (this: Redis, command: { name: string; args: unknown[] }, stream?: unknown) => unknown;

export function installRequestCounter(): void {
  const proto = Redis.prototype as unknown as { sendCommand: SendCommand };
  const original = proto.sendCommand;
  proto.sendCommand = function (command, stream) {
    if (!ignored.has(this)) {
      const name =
        command.name === 'evalsha' ? `evalsha:${String(command.args[0]).slice(0, 8)}` : command.name;
      counts[name] = (counts[name] ?? 0) + 1;
    }
    return original.call(this, command, stream);
  };
}

/** The harness's own clients (fn's counters) are not the peer's requests. */
export function ignoreClient(client: Redis): void {
  ignored.add(client);
}

/** The counts since the last call. */
export function takeRequestCounts(): RequestCounts {
  const taken = counts;
  counts = {};
  return taken;
}
