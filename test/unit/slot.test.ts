/**
 * keySlot gives the slot Redis Cluster gives a key: the expected numbers are Redis' own answers to
 * `CLUSTER KEYSLOT <key>` (redis-server 7, asked once by hand), not values computed by our code.
 */
import { describe, expect, it } from 'vitest';
import { keySlot } from '../../src/slot.js';

describe('keySlot', () => {
  for (const { key, slot, why } of [
    { key: 'foo', slot: 12182, why: 'a key without braces hashes whole' },
    { key: 'once:{migrate:v42}:done', slot: 7797, why: 'a hash tag hashes only the tag (our channel names)' },
    { key: 'a{b}c', slot: 3300, why: 'the tag is the text between the braces' },
    { key: '{', slot: 4092, why: 'an open brace with no close hashes the whole key' },
    { key: '}{x}', slot: 16287, why: 'a close brace before the first open one is no tag' },
    { key: 'x{}{y}', slot: 14166, why: 'an empty first tag hashes the whole key, not the later {y}' },
    { key: 'ünï', slot: 9441, why: 'the key is hashed as UTF-8 bytes' },
  ]) {
    it(`puts ${key} in slot ${slot} (${why})`, () => {
      expect(keySlot(key)).toBe(slot);
    });
  }

  it('puts names that share a hash tag in one slot, the slot of the tag itself', () => {
    const names = [
      'ns:{migrate:v42}:state',
      'ns:{migrate:v42}:lease',
      'other:{migrate:v42}:done',
      'migrate:v42',
    ];
    expect(new Set(names.map(keySlot))).toEqual(new Set([7797]));
  });

  it('always answers a slot in 0..16383', () => {
    for (const key of ['', 'a', '{}', '{{}}', 'x'.repeat(1024), '😀', '\u0000']) {
      const slot = keySlot(key);
      expect(Number.isInteger(slot) && slot >= 0 && slot < 16384).toBe(true);
    }
  });
});
