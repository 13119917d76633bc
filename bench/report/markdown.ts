import type { BenchConfig } from '../config.js';
import { PEERS } from '../peers/peer.js';
import { largestShape, over, type Results, renewals } from '../results.js';
import type { S1Result } from '../scenarios/s1-fanout.js';
import type { S2Result } from '../scenarios/s2-duration.js';
import type { S3Result } from '../scenarios/s3-takeover.js';
import type { S4Result } from '../scenarios/s4-cached.js';
import type { S5Result } from '../scenarios/s5-throughput.js';
import type { TargetCheck } from '../targets.js';
import { breakdown, cell, failuresOf, int, label, ms, ratio, sends, table } from './format.js';

/** Chart files the report links to (written beside it). */
export const CHARTS = {
  cdf: 's1-release-latency-cdf.svg',
  commands: 's2-commands-vs-fn-duration.svg',
} as const;

/** Names a request kind ("evalsha:1b77b94a" → "script …"), and tells a lease renewal. */
export interface RequestNames {
  label(kind: string): string;
  isRenewal(kind: string): boolean;
}

/** RESULTS.md: how it was measured, the targets, then one section per scenario. */
export function markdown(results: Results, checks: TargetCheck[], names: RequestNames): string {
  const sections = [
    header(results),
    environment(results),
    targets(checks),
    exactlyOnce(results),
    peers(results),
    results.s1 ? s1(results.s1, results.config, names) : [],
    results.s2 ? s2(results.s2, results.config, names) : [],
    results.s3 ? s3(results.s3, results.config) : [],
    results.s4 ? s4(results.s4, results.config, names) : [],
    results.s5 ? s5(results.s5, results.config) : [],
  ];
  return sections.flat().join('\n');
}

function header({ env, config, wallMs }: Results): string[] {
  const how = config.quick
    ? '**Quick run**: 1 repetition (no spread), 1,000 callers only in S1, fn of 100 ms and 1 s only in S2, ' +
      'a 1 s lease and fn in S3, fewer calls and keys in S4 and S5. Run `npm run bench` for the full numbers.'
    : `Every cell is the median of ${config.reps} repetitions (S1: ${config.s1.reps}), with their spread ` +
      '(min–max) in brackets.';
  return [
    '# redis-once benchmark results',
    '',
    `Written by \`npm run bench${config.quick ? ' -- --quick' : ''}\` on ${env.date} in ` +
      `${(wallMs / 1000).toFixed(0)} s. ${how}`,
    '',
    'All peers ran against one redis-server started by the bench (loopback, no persistence), one after ' +
      'another, interleaved within each repetition. **Redis commands** are INFO commandstats deltas: every ' +
      "command Redis executed, those run inside Lua scripts included, minus the harness's own. **Requests** " +
      'are what the processes sent (one EVALSHA is one request, however much its script does).',
    '',
  ];
}

function environment({ env }: Results): string[] {
  const busy = Math.round(env.busyBefore * 100);
  const out = [
    '## Environment',
    '',
    table(
      ['', ''],
      [
        ['Node.js', env.node],
        ['Redis', env.redis],
        ...Object.entries(env.libraries).map(([name, version]) => [name, version]),
        ['CPU', `${env.cpuModel}, ${env.cores} cores`],
        ['Memory', `${env.memoryGiB} GiB`],
        ['OS', env.os],
        ['CPU busy before the run (other processes)', `${busy} % of ${env.cores} cores`],
        [
          'Load average (1, 5, 15 min)',
          `${env.loadStart.join(', ')} at start; ${env.loadEnd?.join(', ') ?? '?'} at end`,
        ],
      ],
    ),
    '',
  ];
  if (env.busyBefore > 0.25) {
    out.push(
      `> **The machine was busy**: other processes used ${busy} % of its ${env.cores} cores just before the run, ` +
        'so latencies and rates are noisier and slower than on a quiet machine.',
      '',
    );
  }
  return out;
}

function targets(checks: TargetCheck[]): string[] {
  const verdict = (met: boolean | undefined) =>
    met === undefined ? 'not measured' : met ? '✅ met' : '❌ missed';
  return [
    '## Targets (from issue 4)',
    '',
    table(
      ['Scenario', 'Target', 'Measured', 'Met'],
      checks.map((c) => [c.scenario, c.target, c.measured, verdict(c.met)]),
    ),
    '',
  ];
}

function exactlyOnce({ violations, errors }: Results): string[] {
  const out = ['## Exactly-once', ''];
  if (violations.length === 0) out.push('Every peer ran fn exactly once per key in every run.', '');
  else
    out.push(
      'Runs in which fn did **not** run exactly once (a failure of that library, recorded; the bench went on):',
      '',
      table(
        ['Scenario', 'Library', 'Repetition', 'What happened'],
        violations.map((v) => [v.scenario, label(v.peer), String(v.rep), v.detail]),
      ),
      '',
    );
  if (errors.length) out.push('Scenarios that could not finish:', '', ...errors.map((e) => `- ${e}`), '');
  return out;
}

function peers({ config, env }: Results): string[] {
  const pkg = (id: keyof typeof PEERS) => {
    const name = PEERS[id].pkg;
    return name ? `${name}@${env.libraries[name] ?? '?'}` : 'this repository';
  };
  return [
    '## Peers',
    '',
    table(
      ['Library', 'Package', 'How it is used'],
      config.peers.map((p) => [label(p), pkg(p), PEERS[p].how]),
    ),
    '',
  ];
}

function s1(result: S1Result, config: BenchConfig, names: RequestNames): string[] {
  const out = [
    `## S1 — fan-out (fn ${ms(result.fnMs)}, lease ${ms(result.leaseMs)})`,
    '',
    "Release latency per caller = caller resolved − fn finished on the leader (one clock: the machine's). " +
      "The ratio columns divide redis-once's median by the peer's.",
    '',
  ];
  for (const shape of result.shapes) {
    const once = shape.runs['redis-once'];
    const onceP99 = over(once, (r) => r.p99).median;
    const onceCommands = over(once, (r) => r.commands).median;
    const head = ['Library', 'p50', 'p99', 'max', 'Redis commands', 'requests'];
    head.push('redis-once ÷ peer: p99', 'commands', 'failures');
    const rows = config.peers.map((p) => {
      const runs = shape.runs[p];
      const p99 = over(runs, (r) => r.p99);
      const commands = over(runs, (r) => r.commands);
      const mine = p === 'redis-once';
      return [
        label(p),
        cell(
          over(runs, (r) => r.p50),
          ms,
        ),
        cell(p99, ms),
        cell(
          over(runs, (r) => r.max),
          ms,
        ),
        cell(commands, int),
        cell(
          over(runs, (r) => r.requests),
          int,
        ),
        mine ? '' : ratio(onceP99, p99.median),
        mine ? '' : ratio(onceCommands, commands.median),
        failuresOf(runs),
      ];
    });
    out.push(
      `### ${int(shape.callers)} callers (${shape.processes} processes × ${shape.callersPerProcess})`,
      '',
    );
    out.push(table(head, rows), '');
    if (once?.[0]) out.push(breakdown('redis-once, first repetition', once[0], names.label), '');
  }
  const largest = largestShape(result);
  if (largest) out.push(`![Release latency CDF, ${int(largest.callers)} callers](${CHARTS.cdf})`, '');
  return out;
}

function s2(result: S2Result, config: BenchConfig, names: RequestNames): string[] {
  const { shape, durations, leaseMs } = result;
  const last = durations.length - 1;
  const once = result.runs['redis-once'];
  const onceLast = over(once?.[last], (r) => r.commands).median;
  const out = [
    `## S2 — Redis commands vs fn duration (${int(shape.processes * shape.callersPerProcess)} callers: ` +
      `${shape.processes} × ${shape.callersPerProcess}, lease ${ms(leaseMs)})`,
    '',
  ];
  const head = ['Library', ...durations.map((d) => `fn ${ms(d)}`), 'growth per s of fn'];
  head.push(`redis-once ÷ peer at ${ms(durations[last])}`);
  const rows = config.s2.peers.map((p) => {
    const cells = durations.map((_, i) => over(result.runs[p]?.[i], (r) => r.commands));
    const growth = (cells[last]!.median - cells[0]!.median) / ((durations[last]! - durations[0]!) / 1000);
    return [
      label(p),
      ...cells.map((c) => cell(c, int)),
      Number.isFinite(growth) ? `${int(growth)}/s` : '—',
      p === 'redis-once' ? '' : ratio(onceLast, cells[last]!.median),
    ];
  });
  out.push(table(head, rows), '');
  if (once) {
    const renewed = (r: Parameters<typeof renewals>[0]) => renewals(r, names.isRenewal);
    out.push(
      'redis-once requests, lease renewals apart (medians):',
      '',
      table(
        ['fn', 'requests', 'of which renewals', 'others', 'Redis commands'],
        durations.map((d, i) => [
          ms(d),
          int(over(once[i], (r) => r.requests).median),
          int(over(once[i], renewed).median),
          int(over(once[i], (r) => r.requests - renewed(r)).median),
          int(over(once[i], (r) => r.commands).median),
        ]),
      ),
      '',
    );
    const lastRun = once[last]?.[0];
    if (lastRun)
      out.push(
        breakdown(`redis-once, fn ${ms(durations[last])}, first repetition`, lastRun, names.label),
        '',
      );
  }
  out.push(`![Redis commands vs fn duration](${CHARTS.commands})`, '');
  return out;
}

function s3(result: S3Result, config: BenchConfig): string[] {
  const { shape } = result;
  const rows = config.peers.map((p) => {
    const runs = result.runs[p] ?? [];
    return [
      label(p),
      cell(
        over(runs, (r) => r.takeoverMs ?? Number.NaN),
        ms,
      ),
      runs.map((r) => (r.completions === 1 ? '1' : `**${r.completions}**`)).join(', '),
      runs.map((r) => r.starts).join(', '),
      runs.map((r) => `${r.resolved}/${r.callers - shape.callersPerProcess}`).join(', '),
      failuresOf(runs),
    ];
  });
  return [
    `## S3 — takeover (${shape.processes} processes × ${shape.callersPerProcess} callers; the leader is ` +
      `SIGKILLed ${ms(result.killAfterMs)} into a ${ms(result.fnMs)} fn; lease ${ms(result.leaseMs)})`,
    '',
    `Takeover = kill → the next fn start anywhere. Target: ≤ lease + 100 ms = ${ms(result.leaseMs + 100)}. ` +
      'Completed executions are counted in Redis at the end of fn; more than one is a violation. The ' +
      "repetitions run side by side (each its own key); the killed process's callers never resolve.",
    '',
    table(
      ['Library', 'kill → new leader starts fn', 'completed executions, per repetition', 'fn starts'].concat(
        'callers resolved',
        'failures',
      ),
      rows,
    ),
    '',
  ];
}

function s4(result: S4Result, config: BenchConfig, names: RequestNames): string[] {
  const onceWarm = over(result.warm['redis-once'], (r) => r.callsPerSec).median;
  const rows = config.peers.map((p) => {
    const warm = result.warm[p];
    const fresh = result.fresh[p];
    const rate = over(warm, (r) => r.callsPerSec);
    const setup = cell(
      over(fresh, (r) => r.setupRequests),
      int,
    );
    return [
      label(p),
      cell(rate, int),
      p === 'redis-once' ? '' : ratio(onceWarm, rate.median),
      cell(
        over(fresh, (r) => r.firstCallMs),
        ms,
      ),
      cell(
        over(fresh, (r) => r.requests),
        int,
      ),
      cell(
        over(fresh, (r) => r.commands),
        int,
      ),
      sends(fresh?.[0]?.requestsByKind ?? {}, names.label),
      `${setup}: ${sends(fresh?.[0]?.setupRequestsByKind ?? {}, names.label)}`,
      failuresOf([...(warm ?? []), ...(fresh ?? [])]),
    ];
  });
  const head = ['Library', 'warm calls/s', 'redis-once ÷ peer', 'fresh: first call', 'first call: requests'];
  head.push('first call: Redis commands', 'first call sends', 'start-up: requests', 'failures');
  return [
    '## S4 — cached path',
    '',
    `Warm: \`await initOnce(key, fn)\` in a loop in one process after the key is done (redis-once: up to ` +
      `${int(result.calls)} calls of \`await once.run(key, fn)\`; peers that read Redis on every call stop ` +
      `after ${ms(config.s4.peerMaxMs)}). Fresh: the first call of a process that never called before, on the ` +
      "done key. Start-up (connecting the application's client, creating the library, then 100 ms idle) is " +
      'counted apart from the first call, which is what the target speaks of.',
    '',
    table(head, rows),
    '',
  ];
}

function s5(result: S5Result, config: BenchConfig): string[] {
  const once = over(result.runs['redis-once'], (r) => r.keysPerSec).median;
  const rows = config.peers.map((p) => {
    const rate = over(result.runs[p], (r) => r.keysPerSec);
    return [
      label(p),
      cell(rate, int),
      p === 'redis-once' ? '' : ratio(once, rate.median),
      failuresOf(result.runs[p]),
    ];
  });
  return [
    `## S5 — throughput (${int(result.keys)} distinct keys from one process, ${result.concurrency} at a time, ` +
      'trivial fn)',
    '',
    table(['Library', 'keys/s', 'redis-once ÷ peer', 'failures'], rows),
    '',
  ];
}
