import { createHash } from 'node:crypto';

/**
 * Every Redis key and channel name redis-once uses, in one place.
 *
 * All names of one once-key share a hash tag, so they land in one Cluster slot and one Lua script may
 * touch them all: `<ns>:{<key>}:state`, `:lease`, `:fence`, and the completion channel `:done`.
 * Redis takes the hash tag from the first `{` to the first `}` after it, so a key containing a brace
 * would split its names across slots (or hash the whole name, for a key starting with `}`). Such keys
 * are tagged with a digest of the key instead: `<ns>:{#<sha1>}:…`, and so are keys starting with `#`.
 * Every other key stays readable.
 */
export interface KeyNames {
  /** The caller's once-key. */
  readonly key: string;
  /** Hash: status, token, owner, attempts, startedAt, finishedAt, value, error, outcome. */
  readonly state: string;
  /** The lease (a redlock resource): a string holding the leader's random lock value, with a TTL. */
  readonly lease: string;
  /** The fencing counter: the last token issued for this key. Never deleted, so tokens keep rising. */
  readonly fence: string;
  /** Completion channel: the state, published by the script that changed it. */
  readonly done: string;
}

export const MAX_KEY_BYTES = 1024;

export function keyNames(namespace: string, key: string): KeyNames {
  // Digest tags start with `#`, so a key starting with `#` is digested too: no key can pose as another's tag.
  const tag = /[{}]|^#/.test(key) ? `#${createHash('sha1').update(key).digest('hex')}` : key;
  const base = `${namespace}:{${tag}}`;
  return {
    key,
    state: `${base}:state`,
    lease: `${base}:lease`,
    fence: `${base}:fence`,
    done: `${base}:done`,
  };
}

/** One channel per namespace: `reset(key)` publishes the key here so every process drops its memo. */
export function controlChannel(namespace: string): string {
  return `${namespace}:control`;
}
