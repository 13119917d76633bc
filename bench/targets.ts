import { ms } from './report/format.js';
import { largestShape, over, type Results, renewals } from './results.js';
import { HANDSHAKE } from './scenarios/s4-cached.js';

/** One of the issue's targets, judged on this run's medians. `met` is undefined when not measured. */
export interface TargetCheck {
  scenario: string;
  target: string;
  measured: string;
  met: boolean | undefined;
}

export function checkTargets(
  results: Results,
  isRenewal: (kind: string) => boolean,
  requestLabel: (kind: string) => string,
): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const shape = largestShape(results.s1);
  const once = shape?.runs['redis-once'];
  const ideal = shape?.runs.ideal;
  const redlock = shape?.runs.redlock;
  const at = shape ? `${shape.callers.toLocaleString('en-US')} callers` : '';

  const p99 = over(once, (r) => r.p99).median;
  const idealP99 = over(ideal, (r) => r.p99).median;
  checks.push({
    scenario: 'S1',
    target: `p99 at ${at} no worse than the ideal bound's`,
    measured: `redis-once ${ms(p99)} vs ideal ${ms(idealP99)}`,
    met: once && ideal ? p99 <= idealP99 : undefined,
  });
  const redlockP99 = over(redlock, (r) => r.p99).median;
  checks.push({
    scenario: 'S1',
    target: 'p99 ≥ 100× lower than redlock with default retries',
    measured: `${ms(redlockP99)} / ${ms(p99)} = ${(redlockP99 / p99).toFixed(0)}×`,
    met: once && redlock ? redlockP99 / p99 >= 100 : undefined,
  });
  const commands = over(once, (r) => r.commands).median;
  const idealCommands = over(ideal, (r) => r.commands).median;
  const requests = over(once, (r) => r.requests).median;
  const idealRequests = over(ideal, (r) => r.requests).median;
  checks.push({
    scenario: 'S1',
    target: "Redis commands ≤ 1/50 of the ideal bound's",
    measured:
      `commandstats ${commands} vs ${idealCommands} (1/${(idealCommands / commands).toFixed(0)}); ` +
      `requests sent ${requests} vs ${idealRequests} (1/${(idealRequests / requests).toFixed(0)})`,
    met: once && ideal ? commands * 50 <= idealCommands : undefined,
  });

  const s2 = results.s2?.runs['redis-once'];
  if (results.s2 && s2) {
    const perDuration = s2.map((reps) => ({
      other: over(reps, (r) => r.requests - renewals(r, isRenewal)).median,
      renew: over(reps, (r) => renewals(r, isRenewal)).median,
      commands: over(reps, (r) => r.commands).median,
    }));
    const others = perDuration.map((d) => d.other);
    const spread = Math.max(...others) - Math.min(...others);
    checks.push({
      scenario: 'S2',
      target: 'commands flat in fn duration apart from lease renewals',
      measured: `${results.s2.durations
        .map(
          (fnMs, i) =>
            `${ms(fnMs)}: ${others[i]} requests + ${perDuration[i]!.renew} renewals (${perDuration[i]!.commands} commands)`,
        )
        .join('; ')} — lease ${ms(results.s2.leaseMs)}`,
      // Slack of two requests per process: a process that finds the key still free in the first
      // milliseconds tries the lease once and is refused (redlock's acquire, then the release redlock
      // sends after any refused acquire). That race is the start's, not a cost of fn's duration.
      met: spread <= 2 * results.s2.shape.processes,
    });
  }

  const s3 = results.s3?.runs['redis-once'];
  if (results.s3 && s3) {
    const bound = results.s3.leaseMs + 100;
    const worst = Math.max(...s3.map((r) => r.takeoverMs ?? Number.POSITIVE_INFINITY));
    const takeover = over(s3, (r) => r.takeoverMs ?? Number.NaN);
    checks.push({
      scenario: 'S3',
      target: `takeover ≤ lease + 100 ms (${ms(bound)}), exactly one completed execution`,
      measured:
        `median ${ms(takeover.median)}, worst ${ms(worst)}; completions per rep: ` +
        s3.map((r) => r.completions).join(', '),
      met: worst <= bound && s3.every((r) => r.completions === 1),
    });
  }

  const warm = results.s4?.warm['redis-once'];
  if (warm) {
    const rate = over(warm, (r) => r.callsPerSec).median;
    checks.push({
      scenario: 'S4',
      target: '≥ 2,000,000 cached calls/s in one process',
      measured: `${Math.round(rate).toLocaleString('en-US')} calls/s`,
      met: rate >= 2_000_000,
    });
  }
  const fresh = results.s4?.fresh['redis-once'];
  if (fresh) {
    const requests = over(fresh, (r) => r.requests).median;
    const handshake = over(fresh, (r) =>
      Object.entries(r.requestsByKind).reduce((n, [kind, c]) => n + (HANDSHAKE.has(kind) ? c : 0), 0),
    ).median;
    const kinds = Object.entries(fresh[0]?.requestsByKind ?? {})
      .map(([kind, n]) => `${requestLabel(kind)}${n > 1 ? ` ×${n}` : ''}`)
      .join(', ');
    checks.push({
      scenario: 'S4',
      target: 'one round trip for a fresh process (its first call)',
      measured:
        `${requests} requests (${kinds})` +
        (handshake ? `, ${handshake} of them a new connection's handshake` : '') +
        `; first call ${ms(over(fresh, (r) => r.firstCallMs).median)}`,
      met: requests === 1,
    });
  }

  const s5 = results.s5?.runs['redis-once'];
  if (s5) {
    const rate = over(s5, (r) => r.keysPerSec).median;
    checks.push({
      scenario: 'S5',
      target: '≥ 10,000 distinct keys initialised per second from one process',
      measured: `${Math.round(rate).toLocaleString('en-US')} keys/s (${results.s5?.concurrency} at a time)`,
      met: rate >= 10_000,
    });
  }

  const mine = results.violations.filter((v) => v.peer === 'redis-once');
  checks.push({
    scenario: 'all',
    target: 'fn ran exactly once per key, in every scenario',
    measured:
      mine.length === 0
        ? 'no violation'
        : mine.map((v) => `${v.scenario} rep ${v.rep}: ${v.detail}`).join('; '),
    met: mine.length === 0,
  });
  return checks;
}
