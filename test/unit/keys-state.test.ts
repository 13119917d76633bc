/**
 * Key names share one Cluster hash tag per once-key, whatever the key holds; state decoding turns
 * anything that is not a redis-once state (empty, Lua's `{}`, garbage) into idle or "not ours".
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { controlChannel, keyNames } from '../../src/keys.js';
import { decodeMessage, decodeState, IDLE } from '../../src/state.js';

/**
 * The hash tag Redis Cluster hashes for `name`: the text between the first `{` and the first `}` after
 * it, if not empty; otherwise the whole name (https://redis.io/docs/reference/cluster-spec/).
 */
function hashTag(name: string): string {
  const open = name.indexOf('{');
  if (open === -1) return name;
  const close = name.indexOf('}', open + 1);
  if (close === -1 || close === open + 1) return name;
  return name.slice(open + 1, close);
}

function tagsOf(namespace: string, key: string): string[] {
  const names = keyNames(namespace, key);
  return [names.state, names.lease, names.fence, names.done].map(hashTag);
}

const sha1 = (text: string) => createHash('sha1').update(text).digest('hex');

describe('keyNames', () => {
  it('names state, lease, fence and the done channel under the namespace, tagged with the key', () => {
    expect(keyNames('myapp', 'migrate:v42')).toEqual({
      key: 'migrate:v42',
      state: 'myapp:{migrate:v42}:state',
      lease: 'myapp:{migrate:v42}:lease',
      fence: 'myapp:{migrate:v42}:fence',
      done: 'myapp:{migrate:v42}:done',
    });
  });

  it('gives state, lease, fence and done one hash tag: the key itself', () => {
    for (const key of ['migrate:v42', 'a', 'with space', 'ünïcödé 😀', 'a#hash', 'a:b:c', '*?[]']) {
      expect(new Set(tagsOf('ns', key))).toEqual(new Set([key]));
    }
  });

  it('gives different keys different names', () => {
    expect(keyNames('ns', 'a').state).not.toBe(keyNames('ns', 'b').state);
    expect(keyNames('ns1', 'a').state).not.toBe(keyNames('ns2', 'a').state);
  });

  for (const key of ['a{b}c', '{user}', '}x', 'x}', '{', '}', '{}', 'a{b', 'a}b{c}', '{{}}']) {
    it(`tags the key ${JSON.stringify(key)}, which holds a brace, with a digest shared by all its names`, () => {
      const tags = tagsOf('ns', key);
      expect(new Set(tags)).toEqual(new Set([`#${sha1(key)}`]));
      // The braces of the key never reach the names, so Redis cannot take a tag from inside the key.
      const names = keyNames('ns', key);
      expect(names.key).toBe(key);
      for (const name of [names.state, names.lease, names.fence, names.done]) {
        expect(name.startsWith(`ns:{#${sha1(key)}}:`)).toBe(true);
      }
    });
  }

  it('digests a key starting with "#", so no key can pose as another key’s digest tag', () => {
    const braced = 'a{b}';
    const impostor = `#${sha1(braced)}`;
    expect(keyNames('ns', impostor).state).not.toBe(keyNames('ns', braced).state);
    expect(keyNames('ns', impostor).state).toBe(`ns:{#${sha1(impostor)}}:state`);
  });

  it('gives different brace keys different digests', () => {
    expect(keyNames('ns', '{a}').state).not.toBe(keyNames('ns', '{b}').state);
  });

  it('names one control channel per namespace, outside any key', () => {
    expect(controlChannel('myapp')).toBe('myapp:control');
    expect(controlChannel('myapp')).not.toBe(keyNames('myapp', 'control').done);
  });
});

describe('decodeState', () => {
  const flat = [
    'status',
    'done',
    'token',
    '7',
    'owner',
    'node-1',
    'attempts',
    '2',
    'startedAt',
    '1700000000000',
    'finishedAt',
    '1700000000500',
    'value',
    '{"applied":12}',
    'doneTtlMs',
    '60000',
  ];

  it('decodes a done state hash from its flat HGETALL list', () => {
    expect(decodeState(flat)).toEqual({
      status: 'done',
      token: 7,
      owner: 'node-1',
      attempts: 2,
      startedAt: 1_700_000_000_000,
      finishedAt: 1_700_000_000_500,
      valueJson: '{"applied":12}',
      error: undefined,
      outcome: undefined,
      doneTtlMs: 60_000,
    });
  });

  it('decodes a failed state with its error and outcome', () => {
    const state = decodeState([
      'status',
      'failed',
      'token',
      '3',
      'attempts',
      '1',
      'error',
      '{"name":"TypeError","message":"boom"}',
      'outcome',
      'lease-lost',
    ]);
    expect(state.status).toBe('failed');
    expect(state.error).toEqual({ name: 'TypeError', message: 'boom' });
    expect(state.outcome).toBe('lease-lost');
  });

  it('keeps an error that is not JSON as its message', () => {
    expect(decodeState(['status', 'failed', 'error', 'plain text']).error).toEqual({
      name: 'Error',
      message: 'plain text',
    });
  });

  it('reads no state as idle: [], and {} (how Lua cjson encodes an empty table)', () => {
    expect(decodeState([])).toEqual(IDLE);
    expect(decodeState({})).toEqual(IDLE);
  });

  for (const garbage of [null, undefined, 'done', 42, { status: 'done' }, ['status'], ['status', 'bogus']]) {
    it(`reads ${JSON.stringify(garbage) ?? 'undefined'} as idle`, () => {
      expect(decodeState(garbage)).toEqual(IDLE);
    });
  }

  it('ignores numbers it cannot read exactly, and unknown outcomes', () => {
    const state = decodeState([
      'status',
      'running',
      'token',
      'abc',
      'attempts',
      '9007199254740993',
      'startedAt',
      '',
      'outcome',
      'exploded',
    ]);
    expect(state.status).toBe('running');
    expect(state.token).toBe(0);
    expect(state.attempts).toBe(0);
    expect(state.startedAt).toBeUndefined();
    expect(state.outcome).toBeUndefined();
  });

  it('drops a field without a value at the end of an odd-length list', () => {
    const state = decodeState(['status', 'running', 'token', '4', 'owner']);
    expect(state.token).toBe(4);
    expect(state.owner).toBeUndefined();
  });
});

describe('decodeMessage', () => {
  it('decodes a published state: the JSON array of HGETALL', () => {
    const message = JSON.stringify(['status', 'done', 'token', '7', 'attempts', '1', 'value', '"v"']);
    const decoded = decodeMessage(message);
    expect(decoded?.state.status).toBe('done');
    expect(decoded?.state.token).toBe(7);
    expect(decoded?.state.valueJson).toBe('"v"');
    expect(decoded?.valueOmitted).toBe(false);
  });

  it('says when a large value was left out of the message, to be read from the state', () => {
    const message = JSON.stringify(['status', 'done', 'token', '7', 'valueOmitted', '1']);
    expect(decodeMessage(message)).toMatchObject({
      state: { status: 'done', valueJson: undefined },
      valueOmitted: true,
    });
  });

  it('is not fooled by a field value that reads valueOmitted', () => {
    const message = JSON.stringify(['status', 'done', 'owner', 'valueOmitted', 'value', '1']);
    expect(decodeMessage(message)?.valueOmitted).toBe(false);
  });

  it("reads a reset's '[]' and Lua cjson's empty table '{}' as idle", () => {
    expect(decodeMessage('[]')?.state).toEqual(IDLE);
    expect(decodeMessage('{}')?.state).toEqual(IDLE);
  });

  for (const garbage of ['', 'not json', '[', '{"status":', 'done']) {
    it(`answers undefined (not ours) for the garbage ${JSON.stringify(garbage)}`, () => {
      expect(decodeMessage(garbage)).toBeUndefined();
    });
  }

  it('never reads JSON that is not a state as done', () => {
    for (const message of ['null', '42', '"done"', '{"status":"done"}', '["status","bogus"]']) {
      expect(decodeMessage(message)?.state.status ?? 'idle').toBe('idle');
    }
  });
});
