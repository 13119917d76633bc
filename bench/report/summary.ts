import { largestShape, over, type Results } from '../results.js';
import type { TargetCheck } from '../targets.js';
import { int, label, ms } from './format.js';

/** The few lines printed to stdout at the end of a run. */
export function summary(results: Results, checks: TargetCheck[]): string {
  const lines: string[] = [];
  const shape = largestShape(results.s1);
  if (shape) {
    lines.push(`S1 ${int(shape.callers)} callers (medians):`);
    for (const p of results.config.peers) {
      const runs = shape.runs[p];
      const p99 = ms(over(runs, (r) => r.p99).median).padStart(8);
      const commands = int(over(runs, (r) => r.commands).median).padStart(7);
      lines.push(`  ${label(p).padEnd(26)} p99 ${p99} · ${commands} Redis commands`);
    }
  }
  const takeover = results.s3?.runs['redis-once'];
  if (takeover)
    lines.push(`S3 redis-once takeover ${ms(over(takeover, (r) => r.takeoverMs ?? Number.NaN).median)}`);
  lines.push('Targets:');
  for (const c of checks)
    lines.push(`  ${c.met === undefined ? '·' : c.met ? '✓' : '✗'} ${c.scenario} ${c.target}: ${c.measured}`);
  if (results.violations.length) {
    lines.push('Exactly-once violations:');
    for (const v of results.violations)
      lines.push(`  ${v.scenario} ${label(v.peer)} rep ${v.rep}: ${v.detail}`);
  }
  return lines.join('\n');
}
