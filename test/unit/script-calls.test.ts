/**
 * EVALSHA with its NOSCRIPT fallback, cheap on a cold start: a stub `send` plays a server whose script
 * cache the test controls, and records every request.
 */
import { describe, expect, it } from 'vitest';
import { plainReply, ScriptCalls } from '../../src/drivers/script-calls.js';
import { LuaScript } from '../../src/scripts.js';

const script = new LuaScript('probe', 'return {0}', 1);

/** A server that knows the scripts in `cache`; each request waits for `flush()` to be answered. */
function server(cache = new Set<string>()) {
  const sent: string[][] = [];
  const pending: Array<() => void> = [];
  const send = (command: string, rest: readonly string[]) => {
    const args = [command, ...rest];
    sent.push(args);
    return new Promise<unknown>((resolve, reject) => {
      pending.push(() => {
        const [command, sha] = args;
        if (command === 'SCRIPT') {
          cache.add(script.sha);
          resolve(script.sha);
        } else if (command === 'EVALSHA' && !cache.has(sha!)) {
          reject(new Error('NOSCRIPT No matching script. Please use EVAL.'));
        } else resolve([0]);
      });
    });
  };
  /** Answers every request sent so far, and lets the callers act on the answers. */
  const flush = async () => {
    for (let round = 0; round < 10; round++) {
      for (const answer of pending.splice(0)) answer();
      await new Promise((resolve) => setImmediate(resolve));
    }
  };
  return { send, sent, cache, flush };
}

describe('ScriptCalls', () => {
  it('on a fresh server, costs one probe and one SCRIPT LOAD however many calls start together', async () => {
    const s = server();
    const calls = new ScriptCalls(s.send, false);
    const replies = Promise.all(Array.from({ length: 50 }, () => calls.eval(script, ['k'], ['a'])));
    await s.flush();
    expect(await replies).toEqual(Array(50).fill([0]));
    const kinds = s.sent.map((args) => args[0]);
    expect(kinds.filter((k) => k === 'SCRIPT')).toHaveLength(1);
    // The probe (NOSCRIPT), then the probe again, then the 49 that waited for it: no script resent.
    expect(kinds.filter((k) => k === 'EVALSHA')).toHaveLength(51);
    expect(kinds).not.toContain('EVAL');
  });

  it('on a server that knows the script, sends EVALSHA once per call (the first alone)', async () => {
    const s = server(new Set([script.sha]));
    const calls = new ScriptCalls(s.send, false);
    const replies = Promise.all(Array.from({ length: 10 }, () => calls.eval(script, ['k'], [])));
    await s.flush();
    await replies;
    expect(s.sent.map((args) => args[0])).toEqual(Array(10).fill('EVALSHA'));
    expect(s.sent[0]).toEqual(['EVALSHA', script.sha, '1', 'k']);
  });

  it('loads again, once, when the server lost its scripts later (a restart, SCRIPT FLUSH)', async () => {
    const s = server(new Set([script.sha]));
    const calls = new ScriptCalls(s.send, false);
    const first = calls.eval(script, ['k'], []);
    await s.flush();
    await first;
    s.cache.clear();
    const again = Promise.all(Array.from({ length: 5 }, () => calls.eval(script, ['k'], [])));
    await s.flush();
    expect(await again).toEqual(Array(5).fill([0]));
    expect(s.sent.filter((args) => args[0] === 'SCRIPT')).toHaveLength(1);
  });

  it('on a Cluster (a script cache per master), answers NOSCRIPT with EVAL, routed by the same key', async () => {
    const s = server();
    const calls = new ScriptCalls(s.send, true);
    const reply = calls.eval(script, ['k'], ['a']);
    await s.flush();
    expect(await reply).toEqual([0]);
    expect(s.sent.map((args) => args[0])).toEqual(['EVALSHA', 'EVAL']);
    expect(s.sent[1]).toEqual(['EVAL', script.source, '1', 'k', 'a']);
  });

  it('passes every other error on, and probes again on the next call', async () => {
    let fail = true;
    const sent: string[] = [];
    const calls = new ScriptCalls(async (command) => {
      sent.push(command);
      if (fail) throw new Error('LOADING Redis is loading the dataset in memory');
      return [0];
    }, false);
    await expect(calls.eval(script, ['k'], [])).rejects.toThrow(/LOADING/);
    fail = false;
    expect(await calls.eval(script, ['k'], [])).toEqual([0]);
    expect(sent).toEqual(['EVALSHA', 'EVALSHA']);
  });
});

describe('plainReply', () => {
  it('turns Buffers into strings and BigInts into numbers, at any depth', () => {
    expect(plainReply([1n, Buffer.from('a'), [Buffer.from('b'), 2]])).toEqual([1, 'a', ['b', 2]]);
  });
});
