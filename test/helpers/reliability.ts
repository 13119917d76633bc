/**
 * What each fault test measured, for docs/RELIABILITY.md: a test that passes records its row in
 * test-results/reliability/<id>.json; `npm run reliability` runs the fault suite and writes the report
 * from those files and the list of faults (test/chaos/faults.ts), so the figures are never typed by
 * hand and a fault whose test did not pass shows as such.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
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
  /** Callers of a process the fault killed: they died with it (callers = settled + these). */
  diedWithProcess?: number;
  /** The slowest caller to settle, from the fault, in ms. */
  worstSettleMs: number;
}

/**
 * Records one passing run of a fault; runs of the same fault in one test run (once per client, say)
 * add up, the worst settle time is the worst of them.
 */
export function recordFault(run: FaultRun): void {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = `${RESULTS_DIR}${run.id}.json`;
  const session = process.env.REDIS_ONCE_TEST_SESSION ?? 'none';
  let total: FaultRun & { session: string } = { ...run, session };
  if (existsSync(file)) {
    const before = JSON.parse(readFileSync(file, 'utf8')) as FaultRun & { session?: string };
    if (before.session === session) {
      total = {
        ...total,
        runs: before.runs + run.runs,
        callers: before.callers + run.callers,
        executions: before.executions + run.executions,
        done: before.done + run.done,
        staleRefused: before.staleRefused + run.staleRefused,
        settled: before.settled + run.settled,
        diedWithProcess: (before.diedWithProcess ?? 0) + (run.diedWithProcess ?? 0),
        worstSettleMs: Math.max(before.worstSettleMs, run.worstSettleMs),
      };
    }
  }
  writeFileSync(file, `${JSON.stringify(total, null, 2)}\n`);
}
