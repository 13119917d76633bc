import Redlock from 'redlock';
import { scripts } from '../src/scripts.js';

/**
 * Names for the EVALSHA requests the workers count (they see only a SHA): which script of which
 * library. S2 needs it to tell redis-once's lease renewals (redlock's extend script) from the rest.
 */
export function scriptNames(): Map<string, string> {
  const names = new Map<string, string>();
  const add = (sha: string, name: string) => names.set(sha.slice(0, 8), name);
  for (const script of Object.values(scripts)) add(script.sha, `redis-once ${script.name}`);
  for (const [name, script] of Object.entries(new Redlock([{} as never]).scripts))
    add(script.hash, `redlock ${name.replace('Script', '')}`);
  return names;
}

/**
 * `evalsha:1b77b94a` → `script @sesamecare-oss/redlock extendLock`; other names upper-cased. (A
 * script is sent as EVAL the first time on a connection by ioredis' defineCommand, as EVALSHA after:
 * one request either way.)
 */
export function requestLabel(kind: string, names: Map<string, string>): string {
  if (!kind.startsWith('evalsha:')) return kind.toUpperCase();
  const sha = kind.slice('evalsha:'.length);
  return `script ${names.get(sha) ?? sha}`;
}

/** Lease renewals: redis-once's renew script, or redlock's extend script. */
export function isRenewal(kind: string, names: Map<string, string>): boolean {
  return kind.startsWith('evalsha:') && /extend|renew/i.test(names.get(kind.slice('evalsha:'.length)) ?? '');
}
