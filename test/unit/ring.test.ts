/**
 * The ring leads record their leases in for the standby's thread (src/renewer/ring.ts): records come
 * out whole and in order, across the end of the ring, and a full ring refuses rather than overwrites.
 */
import { describe, expect, it } from 'vitest';
import { append, drain, type LeaseRecord, newRing } from '../../src/renewer/ring.js';

function record(id: number, key = `key-${id}`): LeaseRecord {
  return {
    id,
    slot: id % 7,
    generation: id * 3,
    leaseMs: 30_000,
    key,
    leaseKey: `once:{${key}}:lease`,
    leaseValue: `v${id}`,
  };
}

describe('the lease ring', () => {
  it('gives back what was appended, in order, once', () => {
    const ring = newRing(4096);
    const records = [record(1), record(2, 'ключ ✓ 🔑'), record(3)];
    for (const r of records) expect(append(ring, r)).toBe(true);
    expect(drain(ring)).toEqual(records);
    expect(drain(ring)).toEqual([]);
  });

  it('wraps at the end of its memory, many times over, without losing or mangling a record', () => {
    const ring = newRing(600);
    const seen: LeaseRecord[] = [];
    const sent: LeaseRecord[] = [];
    for (let id = 0; id < 500; id++) {
      const r = record(id, 'k'.repeat(id % 40));
      expect(append(ring, r)).toBe(true);
      sent.push(r);
      if (id % 2 === 1) seen.push(...drain(ring));
    }
    seen.push(...drain(ring));
    expect(seen).toEqual(sent);
  });

  it('refuses a record it has no room for, and takes it again once drained', () => {
    const ring = newRing(200);
    let appended = 0;
    while (append(ring, record(appended))) appended++;
    expect(appended).toBeGreaterThan(0);
    expect(append(ring, record(99))).toBe(false);
    expect(drain(ring)).toHaveLength(appended);
    expect(append(ring, record(99))).toBe(true);
    expect(append(ring, record(1, 'x'.repeat(500)))).toBe(false);
  });

  it('carries ids past 2^32 whole', () => {
    const ring = newRing(1024);
    const r = { ...record(1), id: 2 ** 32 + 5 };
    append(ring, r);
    expect(drain(ring)).toEqual([r]);
  });
});
