/**
 * The standby renewer's pooled cells (src/renewer/cell.ts): a freed cell rests before another lease
 * takes it, and comes back under a new generation, so the thread never acts for one lease in another's
 * cell.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  CellPool,
  endCell,
  generationOf,
  prove,
  provenSentAt,
  REFUSED,
  RUNNING,
  refuse,
  STOPPED,
  stateOf,
  whileOurs,
} from '../../src/renewer/cell.js';

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['performance'] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('CellPool', () => {
  it('hands out RUNNING cells with the proof they start from, each under a new generation', () => {
    const pool = new CellPool(4, 250);
    const a = pool.take(1_000)!;
    const b = pool.take(2_000)!;
    expect([a.slot, b.slot]).toEqual([0, 1]);
    expect(b.generation).toBeGreaterThan(a.generation);
    expect(stateOf(a.cell)).toBe(RUNNING);
    expect(provenSentAt(b.cell)).toBeCloseTo(2_000, 2);
    expect(generationOf(a.cell)).toBe(a.generation);
  });

  it('takes a freed cell again only after its rest, under a new generation, reset', () => {
    const pool = new CellPool(2, 250);
    const first = pool.take(0)!;
    pool.take(0);
    endCell(first.cell, STOPPED);
    pool.give(first.slot);
    vi.advanceTimersByTime(249);
    expect(pool.take(0)).toBeUndefined();
    vi.advanceTimersByTime(1);
    const again = pool.take(500)!;
    expect(again.slot).toBe(first.slot);
    expect(again.generation).not.toBe(first.generation);
    expect(generationOf(first.cell)).toBe(again.generation);
    expect(stateOf(again.cell)).toBe(RUNNING);
    expect(provenSentAt(again.cell)).toBeCloseTo(500, 2);
  });

  it('gives out cells first freed first, and none when all are taken', () => {
    const pool = new CellPool(3, 0);
    const cells = [pool.take(0)!, pool.take(0)!, pool.take(0)!];
    expect(pool.take(0)).toBeUndefined();
    pool.give(cells[2]!.slot);
    pool.give(cells[0]!.slot);
    expect(pool.take(0)!.slot).toBe(cells[2]!.slot);
    expect(pool.take(0)!.slot).toBe(cells[0]!.slot);
  });

  it('the thread writes only to the lease it was told of: a cell taken by another lease refuses its writes', () => {
    const pool = new CellPool(1, 0);
    const first = pool.take(0)!;
    endCell(first.cell, STOPPED);
    pool.give(first.slot);
    const second = pool.take(1_000)!;
    expect(second.slot).toBe(first.slot);
    // A thread still holding the first lease: nothing it writes reaches the second's cell.
    expect(whileOurs(first.cell, first.generation, () => prove(first.cell, 5_000))).toBe(false);
    expect(refuse(first.cell, first.generation)).toBe(false);
    expect(provenSentAt(second.cell)).toBeCloseTo(1_000, 2);
    expect(stateOf(second.cell)).toBe(RUNNING);
    // For the lease it holds, it writes.
    expect(whileOurs(second.cell, second.generation, () => prove(second.cell, 2_000))).toBe(true);
    expect(provenSentAt(second.cell)).toBeCloseTo(2_000, 2);
    expect(refuse(second.cell, second.generation)).toBe(true);
    expect(stateOf(second.cell)).toBe(REFUSED);
  });

  it('a lease stopped while the thread writes to its cell: the cell is not taken again until the thread is done', () => {
    const pool = new CellPool(1, 0);
    const lease = pool.take(0)!;
    let takenMeanwhile: unknown = 'not tried';
    whileOurs(lease.cell, lease.generation, () => {
      // The leader's thread stops the lease and gives the cell back, right now.
      endCell(lease.cell, STOPPED);
      pool.give(lease.slot);
      expect(stateOf(lease.cell)).toBe(STOPPED);
      takenMeanwhile = pool.take(0);
    });
    expect(takenMeanwhile).toBeUndefined();
    expect(stateOf(lease.cell)).toBe(STOPPED);
    const next = pool.take(0)!;
    expect(next.slot).toBe(lease.slot);
    expect(generationOf(next.cell)).toBe(next.generation);
  });
});
