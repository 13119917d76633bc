/**
 * `npm run reliability`: runs the fault suite (test/chaos), then writes docs/RELIABILITY.md from what
 * each fault test measured (test-results/reliability/*.json) and the list of faults with their
 * guarantees (test/chaos/faults.ts). Nothing in the table is typed by hand.
 *
 *   node --import tsx scripts/reliability-report.ts [--no-run]
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { FAULTS } from '../test/chaos/faults.js';
import { type FaultRun, RESULTS_DIR } from '../test/helpers/reliability.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const OUT = `${ROOT}docs/RELIABILITY.md`;

if (!process.argv.includes('--no-run')) {
  rmSync(RESULTS_DIR, { recursive: true, force: true });
  const files = [...new Set(FAULTS.map((f) => f.test))];
  try {
    execFileSync('npx', ['vitest', 'run', ...files], { cwd: ROOT, stdio: 'inherit' });
  } catch {
    console.error('some fault tests failed: the report shows them as not passed');
  }
}

function ms(value: number): string {
  return value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${Math.round(value)} ms`;
}

const rows = FAULTS.map((fault) => {
  const file = `${RESULTS_DIR}${fault.id}.json`;
  const run = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as FaultRun) : undefined;
  const cells = run
    ? [
        String(run.runs),
        String(run.callers),
        String(run.executions),
        `${run.done} of ${run.runs}`,
        String(run.staleRefused),
        `${run.settled} of ${run.callers}${run.diedWithProcess ? ` (${run.diedWithProcess} died with their process)` : ''}`,
        ms(run.worstSettleMs),
      ]
    : ['—', '—', '—', '—', '—', '—', existsSync(`${ROOT}${fault.test}`) ? 'not passed' : 'no test yet'];
  return `| ${fault.fault} | ${cells.join(' | ')} | ${fault.guarantee} | [test](../${fault.test}) |`;
});

const passed = FAULTS.filter((f) => existsSync(`${RESULTS_DIR}${f.id}.json`)).length;
const report = `# Reliability

What the fault suite did to redis-once, and what held. Every figure below was counted by the tests
themselves — from the ledger and what each process reported, or asserted case by case — against real
redis-server processes and real processes, on loopback: the table is written by
\`npm run reliability\` (scripts/reliability-report.ts) from their results, never by hand. Each fn
writes to an independent ledger that accepts a write only with the highest fencing token it has seen
for the key, as a database guarded by the token would.

Written ${new Date().toISOString().slice(0, 10)} on Node.js ${process.version}; ${passed} of ${FAULTS.length} faults passed.

| Fault | Runs | Callers | fn executions | Keys done | Stale writes refused | Callers settled | Worst settle time | What must hold | |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
${rows.join('\n')}

*Callers settled*: callers that got the value or a typed error; the callers of a process the fault
killed die with it, and are counted apart. *Worst settle time*: from the
fault to the last caller settling. *fn executions*: fn bodies that ran to their end, stale ones
included — which is why the fencing token matters.

## What the guarantees are, and what they are not

- **At most one runner while the lease is valid; done exactly once.** A leader that cannot renew
  (paused, cut off, its Redis slow) hears \`ctx.signal\` abort a tenth of the lease before the lease
  can expire, so it can stop before anyone else starts. An fn that ignores its signal, or a process
  paused past its lease, *can* still be running when another node takes over: the lease cannot stop a
  process that is not running. That is what the fencing token is for — a write guarded by it (a
  ledger, a migrations table holding the highest token) refuses the stale leader, as the table shows.
  Fencing cannot undo side effects that do not check it (an email sent, a file written).
- **A Redis without persistence can forget.** A redis-server restarted without AOF or RDB forgets every
  done state: the next run runs fn again (the fencing token, floored at the server's clock, still
  rises, so the two runs are told apart). Use persistence where a key must never run twice across a
  Redis restart; \`redis-once doctor\` says which you have.
- **Replication is asynchronous.** A failover can lose a lease or a done state not yet replicated;
  \`replicaAck\` narrows that window, a quorum of independent masters closes it for a minority of
  failed masters.
`;
writeFileSync(OUT, report);
console.log(`wrote ${OUT} (${passed} of ${FAULTS.length} faults passed)`);
