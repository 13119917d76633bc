/**
 * What each fault test measured, for docs/RELIABILITY.md: a test that passes records its row in
 * test-results/reliability/<id>.json; `npm run reliability` runs the fault suite and writes the report
 * from those files and the list of faults (test/chaos/faults.ts), so the figures are never typed by
 * hand and a fault whose test did not pass shows as such.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const RESULTS_DIR = fileURLToPath(new URL('../../test-results/reliability/', import.meta.url));

export interface FaultRun {
  /** The fault's id in test/chaos/faults.ts. */
  id: string;
  /** Repetitions of the scenario. */
  runs: number;
  /** Callers, over every run. */
  callers: number;
  /** fn executions that completed (wrote the ledger, or returned), over every run. */
  executions: number;
  /** Keys done, over every run (exactly one per key and run is the guarantee). */
  done: number;
  /** Writes the fencing token let the ledger refuse (a stale leader's). */
  staleRefused: number;
  /** Callers that settled with the value or a typed error. */
  settled: number;
  /** The slowest caller to settle, from the fault, in ms. */
  worstSettleMs: number;
}

export function recordFault(run: FaultRun): void {
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(`${RESULTS_DIR}${run.id}.json`, `${JSON.stringify(run, null, 2)}\n`);
}
