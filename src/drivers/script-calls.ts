import type { LuaScript } from '../scripts.js';

/**
 * EVALSHA with the NOSCRIPT fallback, for any client. On a fresh server every concurrent first call
 * gets NOSCRIPT at once; they then share one SCRIPT LOAD and send EVALSHA again (a Cluster, whose
 * script caches are per master, sends EVAL instead), so a cold start never resends a script per call.
 */
export class ScriptCalls {
  private readonly loading = new Map<string, Promise<void>>();

  constructor(
    private readonly send: (args: readonly string[]) => Promise<unknown>,
    private readonly perMasterCache: boolean,
  ) {}

  async eval(script: LuaScript, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    const tail = [String(script.numberOfKeys), ...keys, ...args];
    try {
      return await this.send(['EVALSHA', script.sha, ...tail]);
    } catch (error) {
      if (!isNoScript(error)) throw error;
      if (this.perMasterCache) return this.send(['EVAL', script.source, ...tail]);
      await this.load(script);
      return this.send(['EVALSHA', script.sha, ...tail]);
    }
  }

  private load(script: LuaScript): Promise<void> {
    let pending = this.loading.get(script.sha);
    if (!pending) {
      pending = this.send(['SCRIPT', 'LOAD', script.source]).then(
        () => {
          this.loading.delete(script.sha);
        },
        (error: unknown) => {
          this.loading.delete(script.sha);
          throw error;
        },
      );
      this.loading.set(script.sha, pending);
    }
    return pending;
  }
}

function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT');
}

/** Replies as strings and numbers, whatever the client's type mapping (Buffers, BigInts). */
export function plainReply(reply: unknown): unknown {
  if (Array.isArray(reply)) return reply.map(plainReply);
  if (Buffer.isBuffer(reply)) return reply.toString('utf8');
  if (typeof reply === 'bigint') return Number(reply);
  return reply;
}
