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
  provenSentAt,
  RUNNING,
  STOPPED,
  stateOf,
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
});
