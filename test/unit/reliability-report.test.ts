/**
 * docs/RELIABILITY.md is current: `npm run reliability` wrote a passing row for every fault the suite
 * lists (test/chaos/faults.ts). Adding a fault without running the report fails here.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FAULTS } from '../chaos/faults.js';

const report = readFileSync(new URL('../../docs/RELIABILITY.md', import.meta.url), 'utf8');

describe('docs/RELIABILITY.md', () => {
  it.each(FAULTS.map((f) => [f.id, f] as const))('has a passing row for %s', (_, fault) => {
    const row = report.split('\n').find((line) => line.startsWith(`| ${fault.fault} |`));
    expect(row, `no row for "${fault.fault}": run npm run reliability`).toBeDefined();
    expect(row).not.toMatch(/not passed|no test yet/);
    expect(row).toContain(fault.guarantee);
  });
});
