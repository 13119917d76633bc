import type { LuaScript } from '../scripts.js';

/**
 * EVALSHA with the NOSCRIPT fallback, for any client, made cheap on a cold start (a deploy):
 *
 * - The first call of a script on a connection goes alone; calls made meanwhile wait for its answer
 *   (one round trip, once per script per process) instead of all getting NOSCRIPT from a fresh server.
 * - On NOSCRIPT, one SCRIPT LOAD serves every call waiting for it, then each sends EVALSHA again. So a
 *   fresh server costs one probe and one load per script, not a resent script per call.
 * - A Cluster's script caches are per master: there a NOSCRIPT is answered by sending EVAL, which
 *   routes by key like EVALSHA does.
 */
export class ScriptCalls {
  /** Per script: known loaded, or the probe/load every call waits for. */
  private readonly scripts = new Map<string, true | Promise<void>>();
  /** SCRIPT LOADs in flight (a probe's answer is not one). */
  private readonly loading = new Set<Promise<void>>();

  /**
   * @param send sends one command: its name, then its arguments (one array, built once per call)
   */
  constructor(
    private readonly send: (command: string, args: readonly string[]) => Promise<unknown>,
    private readonly perMasterCache: boolean,
  ) {}

  eval(script: LuaScript, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    const known = this.scripts.get(script.sha);
    if (known === true || this.perMasterCache) return this.evalsha(script, keys, args);
    if (known === undefined) return this.probe(script, keys, args);
    return known.then(
      () => this.evalsha(script, keys, args),
      () => this.evalsha(script, keys, args),
    );
  }

  private async evalsha(
    script: LuaScript,
    keys: readonly string[],
    args: readonly string[],
  ): Promise<unknown> {
    const call = [script.sha, script.keyCount, ...keys, ...args];
    try {
      return await this.send('EVALSHA', call);
    } catch (error) {
      if (!isNoScript(error)) throw error;
      if (this.perMasterCache) {
        call[0] = script.source;
        return this.send('EVAL', call);
      }
      // The server lost its scripts (restarted, or SCRIPT FLUSH): load once more for everyone.
      await this.load(script);
      return this.send('EVALSHA', call);
    }
  }

  /** The first call of a script: EVALSHA alone; its answer tells every call made meanwhile. */
  private probe(script: LuaScript, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    const first = this.evalsha(script, keys, args);
    const settled = first.then(
      () => {
        this.scripts.set(script.sha, true);
      },
      () => {
        // Loaded by now if the probe's NOSCRIPT made us load it; else the next call probes again.
        if (this.scripts.get(script.sha) === settled) this.scripts.delete(script.sha);
      },
    );
    this.scripts.set(script.sha, settled);
    return first;
  }

  private load(script: LuaScript): Promise<void> {
    const current = this.scripts.get(script.sha);
    if (current !== undefined && current !== true && this.loading.has(current)) return current;
    const loading = this.send('SCRIPT', ['LOAD', script.source]).then(() => {
      this.scripts.set(script.sha, true);
    });
    this.loading.add(loading);
    void loading.then(
      () => this.loading.delete(loading),
      () => {
        this.loading.delete(loading);
        if (this.scripts.get(script.sha) === loading) this.scripts.delete(script.sha);
      },
    );
    this.scripts.set(script.sha, loading);
    return loading;
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
