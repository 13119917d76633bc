/**
 * User input never becomes a glob pattern, a command name or a Lua fragment. Hostile keys and
 * namespaces — glob characters, hash-tag breakers, Lua and command text, newlines, NUL, very long
 * unicode, a key equal to another key's full Redis name or to another key's digest tag — each run,
 * wait, read and reset as themselves: the keyspace, compared before and after by the test's own SCAN,
 * changes only at the key's own Redis names, a neighbour's keys stay as they were, no command but
 * ours reaches Redis (no FLUSHALL, no KEYS), and all names of a key share one Cluster slot. Bad input
 * is an OnceInputError and changes nothing in Redis.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOnce, type Once, OnceInputError } from '../../src/index.js';
import { keyNames } from '../../src/keys.js';
import { keySlot } from '../../src/slot.js';
import { commandStats, diffStats, type RedisServer, startRedis } from '../helpers/redis-server.js';

let redis: RedisServer;
let admin: Redis;
const onces: Once[] = [];

beforeAll(async () => {
  redis = await startRedis({ name: 'hostile-input' });
  admin = redis.client();
});
afterAll(async () => {
  await Promise.all(onces.splice(0).map((once) => once.close()));
  await redis.stop();
});

function open(namespace: string): Once {
  const once = createOnce({ redis: redis.url, namespace, redisTimeoutMs: 2000 });
  onces.push(once);
  return once;
}

/** Every key in Redis with its type and content, read with the test's own SCAN. */
async function keyspace(): Promise<Map<string, string>> {
  const names: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await admin.scan(cursor, 'COUNT', 1000);
    names.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  const space = new Map<string, string>();
  for (const name of names) {
    const type = await admin.type(name);
    const content =
      type === 'string'
        ? await admin.get(name)
        : type === 'hash'
          ? JSON.stringify(Object.entries(await admin.hgetall(name)).sort())
          : type;
    space.set(name, `${type}:${content}`);
  }
  return space;
}

/** Names added, changed or removed between two keyspaces. */
function changed(before: Map<string, string>, after: Map<string, string>): string[] {
  const names = new Set([...before.keys(), ...after.keys()]);
  return [...names].filter((name) => before.get(name) !== after.get(name)).sort();
}

/** Commands that would mean input became a command: none of them is ever ours. */
const NEVER = ['flushall', 'flushdb', 'keys', 'config', 'swapdb', 'eval_ro', 'function', 'shutdown'];

const sha1 = (text: string) => createHash('sha1').update(text).digest('hex');

const NEIGHBOUR_NS = 'neighbour';
const NEIGHBOUR_KEY = 'victim';

const HOSTILE_KEYS = [
  '*',
  '?',
  '[a-z]',
  '\\',
  '\\*',
  '{',
  '}',
  '{}',
  '}{',
  '{victim}',
  'a{b}c',
  '#',
  `#${sha1('a{b}c')}`,
  "'..redis.call('FLUSHALL')..'",
  '"); redis.call("FLUSHALL") --',
  ']]',
  ']]..redis.call("FLUSHALL")..[[',
  '\n',
  'line\r\nFLUSHALL\r\n',
  '\0',
  'a\0b',
  'KEYS *',
  'FLUSHALL',
  '__proto__',
  'constructor',
  `${NEIGHBOUR_NS}:{${NEIGHBOUR_KEY}}:state`,
  `${NEIGHBOUR_NS}:{${NEIGHBOUR_KEY}}:lease`,
  `${NEIGHBOUR_NS}:control`,
  '🚀'.repeat(256), // 1,024 bytes of UTF-8: the longest key allowed
  `${'é'.repeat(511)}x`, // two-byte characters up to the limit, and one more byte
  `ключ-${'日本'.repeat(100)}`,
];

const HOSTILE_NAMESPACES = [
  '*',
  '?',
  '[a-z]',
  '\\',
  ']]',
  "'..redis.call('FLUSHALL')..'",
  '\0',
  '__proto__',
  `${NEIGHBOUR_NS}:`,
  `${NEIGHBOUR_NS}:{${NEIGHBOUR_KEY}}`.replace(/[{}]/g, ''),
  'ключ-🚀',
];

describe('hostile keys and namespaces touch only their own Redis keys', () => {
  beforeAll(async () => {
    // A neighbour: a done key of another namespace, and a plain key of nobody's.
    const neighbour = open(NEIGHBOUR_NS);
    expect(await neighbour.run(NEIGHBOUR_KEY, () => 'the neighbour')).toBe('the neighbour');
    await admin.set('plain:key', 'untouched');
  });

  for (const [label, namespace, keys] of [
    ['keys', `ns-${randomUUID()}`, HOSTILE_KEYS],
    ...HOSTILE_NAMESPACES.map((ns) => ['namespace', ns, ['k', '*', 'a{b}c']] as const),
  ] as const) {
    it(`${label} ${JSON.stringify(label === 'keys' ? 'each' : namespace)}: run, wait, status, reset as themselves`, async () => {
      const once = open(namespace);
      for (const key of keys) {
        const names = keyNames(namespace, key);
        // Every name of a key in one slot: a hash-tag breaker must not split them.
        expect(new Set([names.state, names.lease, names.fence, names.done].map(keySlot)).size).toBe(1);
        const before = await keyspace();
        const stats = await commandStats(admin);
        const value = { key, n: key.length };
        expect(await once.run(key, () => value)).toEqual(value);
        expect(await once.runDetailed(key, () => 'never')).toMatchObject({ role: 'cached', value });
        expect(await once.wait(key)).toEqual(value);
        expect(await once.status(key)).toMatchObject({ state: 'done', value, attempts: 1 });
        const done = await keyspace();
        expect(changed(before, done), JSON.stringify(key)).toEqual([names.fence, names.state].sort());
        expect(await once.reset(key)).toEqual({ existed: true });
        expect(await once.status(key)).toMatchObject({ state: 'idle' });
        const after = await keyspace();
        // What stays: the fencing counter (tokens keep rising across resets), nothing else.
        expect(changed(before, after), JSON.stringify(key)).toEqual([names.fence]);
        expect(after.get(keyNames(NEIGHBOUR_NS, NEIGHBOUR_KEY).state)).toBe(
          before.get(keyNames(NEIGHBOUR_NS, NEIGHBOUR_KEY).state),
        );
        expect(after.get('plain:key')).toBe('string:untouched');
        const calls = diffStats(stats, await commandStats(admin));
        for (const command of NEVER) {
          expect(calls.get(command) ?? 0, `${JSON.stringify(key)}: ${command}`).toBe(0);
        }
      }
    });
  }

  it('a key equal to another key’s digest tag does not share its names', () => {
    const braced = keyNames('ns', 'a{b}c');
    const posing = keyNames('ns', `#${sha1('a{b}c')}`);
    expect(posing.state).not.toBe(braced.state);
    expect(keyNames('ns', `${'ns'}:{x}:state`).state).not.toBe(keyNames('ns', 'x').state);
  });
});

describe('bad input is an OnceInputError and changes nothing in Redis', () => {
  it('keys', async () => {
    const once = open(`bad-${randomUUID()}`);
    // Its connection and its reset subscription are made first: only the bad calls follow.
    await once.status('warm-up');
    const before = await keyspace();
    const bad: unknown[] = [
      '',
      '\uD800',
      'a\uDFFFb',
      `${'🚀'.repeat(256)}x`,
      'é'.repeat(513),
      42,
      null,
      undefined,
      {},
    ];
    for (const key of bad) {
      for (const call of [
        () => once.run(key as string, () => 'v'),
        () => once.runDetailed(key as string, () => 'v'),
        () => once.wait(key as string),
        () => once.status(key as string),
        () => once.reset(key as string),
        async () => once.wrap(key as string, () => 'v'),
      ]) {
        await expect(call(), JSON.stringify(key)).rejects.toBeInstanceOf(OnceInputError);
      }
    }
    expect(changed(before, await keyspace())).toEqual([]);
  });

  it('namespaces', async () => {
    const before = await keyspace();
    for (const namespace of [
      '',
      ' ',
      'a b',
      'line\nbreak',
      'tab\t',
      '{tag}',
      'a{',
      '}',
      'x'.repeat(129),
      7,
    ]) {
      expect(
        () => createOnce({ redis: redis.url, namespace: namespace as string }),
        JSON.stringify(namespace),
      ).toThrow(OnceInputError);
    }
    expect(changed(before, await keyspace())).toEqual([]);
  });
});
