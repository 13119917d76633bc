import { scripts } from '../src/scripts.js';
import type { Environment } from './harness.js';
import { PEERS, type PeerId } from './peers.js';
import type { CpuRun } from './s6.js';
import type { ByPeer, Config, FanoutRun, S4, S5, Violation } from './scenarios.js';
import { type Summary, summarize } from './stats.js';

/** Everything one bench run measured. */
export interface Results {
  env: Environment;
  config: Config;
  wallMs: number;
  s1?: ByPeer<FanoutRun>;
  s3?: ByPeer<FanoutRun>;
  s4?: S4;
  s5?: S5;
  s6?: ByPeer<CpuRun>;
  violations: Violation[];
  /** A scenario that could not finish (the bench went on with the next one). */
  errors: string[];
}

export interface Check {
  scenario: string;
  target: string;
  measured: string;
  met: boolean | undefined;
}

// ---- numbers as the report writes them

const pct = (share: number | undefined) => (share === undefined ? '—' : `${Math.round(share * 100)} %`);
const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—');

function ms(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '—';
  if (n >= 1000) return `${(n / 1000).toFixed(2)} s`;
  return n >= 100 ? `${n.toFixed(0)} ms` : n >= 10 ? `${n.toFixed(1)} ms` : `${n.toFixed(2)} ms`;
}

/** a ÷ b: "0.934×", "4.50×", or "1/42" below 0.1. */
function times(r: number): string {
  if (!Number.isFinite(r) || r <= 0) return '—';
  if (r < 0.1) return `1/${(1 / r).toFixed(0)}`;
  return `${r >= 10 ? r.toFixed(0) : r.toPrecision(3)}×`;
}

/** "12.3 ms (10.1 ms–15.2 ms)": the median, then the spread of the repetitions. */
function cell(s: Summary, fmt: (n: number) => string): string {
  if (s.n === 0) return '—';
  return s.n === 1 || s.min === s.max ? fmt(s.median) : `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`;
}

/** The median and spread of one number over the repetitions, as a cell. */
const med = <T>(
  reps: readonly T[] | undefined,
  pick: (rep: T) => number | undefined,
  fmt: (n: number) => string,
) => cell(over(reps, pick), fmt);

const over = <T>(reps: readonly T[] | undefined, pick: (rep: T) => number | undefined) =>
  summarize((reps ?? []).map(pick));

/** Per repetition, a ÷ b (the runs of one repetition ran back to back). */
function ratios<T>(a: T[] | undefined, b: T[] | undefined, pick: (rep: T) => number | undefined): Summary {
  return summarize((a ?? []).map((rep, i) => (pick(rep) ?? Number.NaN) / (pick(b?.[i] as T) ?? Number.NaN)));
}

/** `head` is the header row, its cells separated by ' | '. */
function table(head: string, rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  const cells = head.split(' | ');
  return [line(cells), line(cells.map(() => '---')), ...rows.map(line)].join('\n');
}

const label = (peer: PeerId) => PEERS[peer].label;
const failures = (reps: readonly { failures: string[] }[] | undefined) =>
  [...new Set((reps ?? []).flatMap((r) => r.failures))].join('; ').replaceAll('|', '\\|');

const scriptNames = new Map(Object.values(scripts).map((s) => [`evalsha:${s.sha.slice(0, 8)}`, s.name]));
function requests(counts: Record<string, number>): string {
  return Object.entries(counts)
    .sort((a, b) => b[1] - a[1])
    .map(
      ([kind, n]) =>
        `${scriptNames.has(kind) ? `EVALSHA ${scriptNames.get(kind)}` : kind.toUpperCase()} ${n}`,
    )
    .join(', ');
}

// ---- targets (the issue's, judged on this run)

export function checkTargets(r: Results): Check[] {
  const checks: Check[] = [];
  const add = (scenario: string, target: string, measured: string, met: boolean | undefined) =>
    checks.push({ scenario, target, measured, met });
  const [once, ideal] = [r.s1?.['redis-once'], r.s1?.ideal];
  if (once && ideal) {
    const p99 = ratios(once, ideal, (x) => x.p99);
    const [a, b] = [over(once, (x) => x.p99).median, over(ideal, (x) => x.p99).median];
    const target = `p99 wake latency ≤ the ideal's in the median of ${once.length} repetitions, none above 1.2×`;
    const measured = `per repetition: median ${times(p99.median)}, worst ${times(p99.max)} (${ms(a)} vs ${ms(b)})`;
    add('S1', target, measured, p99.median <= 1 && p99.max <= 1.2);
    const [c, ci] = [over(once, (x) => x.commands).median, over(ideal, (x) => x.commands).median];
    const [q, qi] = [over(once, (x) => x.requests).median, over(ideal, (x) => x.requests).median];
    add(
      'S1',
      "Redis commands ≤ 1/50 of the ideal's",
      `${int(c)} vs ${int(ci)} (${times(c / ci)}); requests ${int(q)} vs ${int(qi)}`,
      c * 50 <= ci,
    );
  }
  if (r.s5) {
    const { levels, cold } = r.s5;
    const rate = (level: number) => over(levels[level]?.['redis-once'], (x) => x.keysPerSec).median;
    const ratio = (level: number) =>
      ratios(levels[level]?.['redis-once'], levels[level]?.reference, (x) => x.keysPerSec);
    for (const level of [100, 1_000].filter((l) => levels[l])) {
      const target = `keys/s ≥ 0.5× the SET NX + SET + PUBLISH reference at ${int(level)} in flight`;
      add('S5', target, cell(ratio(level), times), ratio(level).median >= 0.5);
    }
    if (levels[1_000] && levels[10_000]) {
      const [at10k, at1k] = [rate(10_000), rate(1_000)];
      const measured = `${int(at10k)} vs ${int(at1k)} keys/s (${times(at10k / at1k)}); ${times(ratio(10_000).median)} the reference`;
      add(
        'S5',
        'no collapse at 10,000 in flight: keys/s ≥ 0.8× its own at 1,000',
        measured,
        at10k >= 0.8 * at1k,
      );
    }
    const c = over(cold['redis-once'], (x) => x.keysPerSec);
    const target = `cold process, fresh redis-server, ${int(r.config.s5.coldKeys)} keys at once: ≥ 5,000 keys/s`;
    add('S5', target, `${cell(c, int)} keys/s`, c.n ? c.median >= 5_000 : undefined);
  }
  const s3 = r.s3?.['redis-once'];
  if (s3) {
    const bound = r.config.s3.leaseMs + 100;
    const worst = Math.max(...s3.map((x) => x.takeoverMs ?? Number.POSITIVE_INFINITY));
    const target = `takeover ≤ lease + 100 ms (${ms(bound)}) in every repetition, exactly one completed execution (previous full run: 1.80 s, ran once)`;
    const completions = s3.map((x) => x.completions).join(', ');
    const measured = `median ${ms(over(s3, (x) => x.takeoverMs).median)}, worst ${ms(worst)}; completions ${completions}`;
    add('S3', target, measured, worst <= bound && s3.every((x) => x.completions === 1));
  }
  const rate = over(r.s4?.warm['redis-once'], (x) => x.callsPerSec);
  if (rate.n)
    add('S4', '≥ 2,000,000 cached calls/s in one process', `${int(rate.median)} calls/s`, rate.median >= 2e6);
  const fresh = r.s4?.fresh['redis-once'];
  const first = over(fresh, (x) => total(x.requests)).median;
  if (fresh)
    add(
      'S4',
      "one request for a fresh process's first call",
      `${first} (${requests(fresh[0]!.requests)})`,
      first === 1,
    );
  const s6 = r.s6?.['redis-once'];
  if (s6) {
    const { busyMs, leaseMs, processes } = r.config.s6;
    const target = `fn blocking its event loop ${ms(busyMs)} (lease ${ms(leaseMs)}) in one of ${processes} processes: one execution, one value, in every repetition`;
    const measured = `executions ${s6.map((x) => x.executions).join(', ')}; ${s6.filter((x) => x.consistent).length} of ${s6.length} consistent; every process had it after ${med(s6, (x) => x.allValuesMs, ms)}`;
    add(
      'S6',
      target,
      measured,
      s6.every((x) => x.executions === 1 && x.consistent),
    );
  }
  const mine = r.violations.filter((v) => v.peer === 'redis-once');
  const broken = mine.map((v) => `${v.scenario} rep ${v.rep}: ${v.detail}`).join('; ') || 'no violation';
  add('all', 'fn ran exactly once per key, in every scenario', broken, mine.length === 0);
  return checks;
}

const total = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);
const verdict = (met: boolean | undefined) =>
  met === undefined ? 'not measured' : met ? '✅ met' : '❌ missed';

// ---- RESULTS.md

export function markdown(r: Results, checks: Check[]): string {
  const { env, config } = r;
  const out = [
    '# redis-once benchmark results',
    '',
    `Written by \`npm run bench${config.quick ? ' -- --quick' : ''}\` on ${env.date} in ${(r.wallMs / 1000).toFixed(0)} s` +
      (config.quick
        ? ': **a quick run**, one repetition of everything (no spread); `npm run bench` gives the full numbers.'
        : '. Every cell is the median of the repetitions, with their spread (min–max) in brackets.'),
    '',
    'One redis-server started by the bench (loopback, no persistence); every peer measured in the same run, ' +
      'interleaved within each repetition. Each measured process is forked for that run alone (no pooling, no ' +
      'warm-up beyond what a deployed process has done). **Redis commands**: INFO commandstats deltas, the ' +
      "commands run inside Lua scripts included, the harness's own left out. **Requests**: what the processes " +
      'sent (one EVALSHA is one request).',
    '',
    '## Environment',
    '',
    table(' | ', [
      ['Node.js', env.node],
      ['Redis', env.redis],
      ...Object.entries(env.libraries),
      ['CPU', env.cpu],
      ['Memory', `${env.memoryGiB} GiB`],
      ['OS', env.os],
      [
        'CPU used by other processes: just before the run, during it',
        `${pct(env.busyBefore)}, ${pct(env.othersDuring)}`,
      ],
      ['Load average at start (1, 5, 15 min)', env.load.join(', ')],
    ]),
    '',
    ...((env.othersDuring ?? 0) > 0.1
      ? [
          `> **Other processes used ${pct(env.othersDuring)} of the cores during this run**: its numbers are slower and noisier than on a quiet machine.`,
          '',
        ]
      : []),
    '## Targets',
    '',
    table(
      'Scenario | Target | Measured | Met',
      checks.map((c) => [c.scenario, c.target, c.measured, verdict(c.met)]),
    ),
    '',
    '## Exactly once',
    '',
    r.violations.length === 0
      ? 'Every peer ran fn exactly once per key in every run.'
      : `Runs in which fn did **not** run exactly once (recorded; the bench went on):\n\n${table(
          'Scenario | Library | Repetition | What happened',
          r.violations.map((v) => [v.scenario, label(v.peer), String(v.rep), v.detail]),
        )}`,
    '',
    ...(r.errors.length
      ? ['Scenarios that could not finish:', '', ...r.errors.map((e) => `- ${e}`), '']
      : []),
    '## Peers',
    '',
    table(
      'Library | Package | How it is used',
      (Object.keys(PEERS) as PeerId[]).map((p) => {
        const pkg = PEERS[p].pkg;
        return [label(p), pkg ? `${pkg}@${env.libraries[pkg] ?? '?'}` : 'this repository', PEERS[p].how];
      }),
    ),
    '',
  ];
  if (r.s1) out.push(...s1(r.s1, config));
  if (r.s3) out.push(...s3(r.s3, config));
  if (r.s4) out.push(...s4(r.s4, config));
  if (r.s5) out.push(...s5(r.s5, config));
  if (r.s6) out.push(...s6(r.s6, config));
  return out.join('\n');
}

function s1(runs: ByPeer<FanoutRun>, config: Config): string[] {
  const { processes, callers, fnMs, leaseMs, peers, reps } = config.s1;
  const ideal = runs.ideal;
  const toIdeal = (p: PeerId, pick: (x: FanoutRun) => number) =>
    p === 'ideal' ? '' : cell(ratios(runs[p], ideal, pick), times);
  const rows = peers.map((p) => [
    label(p),
    med(runs[p], (x) => x.p50, ms),
    med(runs[p], (x) => x.p99, ms),
    med(runs[p], (x) => x.max, ms),
    toIdeal(p, (x) => x.p99),
    med(runs[p], (x) => x.commands, int),
    toIdeal(p, (x) => x.commands),
    med(runs[p], (x) => x.requests, int),
    failures(runs[p]),
  ]);
  const once = runs['redis-once'];
  const perRep = (once ?? []).map((x, i) => `${ms(x.p99)} vs ${ms(ideal?.[i]?.p99)}`).join('; ');
  const first = once?.[0];
  return [
    `## S1 — ${int(processes * callers)} callers in ${processes} processes, fn ${ms(fnMs)}, lease ${ms(leaseMs)} (${reps} repetitions)`,
    '',
    `For every repetition and peer, ${processes} new processes; each first leads a warm-up key of its own (the ` +
      `path a deployed process has already taken), then all ${processes} × ${callers} callers call ` +
      'initOnce(one key) at one moment. Wake latency per caller = caller resolved − fn returned in the leader ' +
      "process (one clock for all: the machine's, `performance.timeOrigin + performance.now()`). Ratios are per " +
      'repetition, peer ÷ ideal, then their median and spread.',
    '',
    table(
      'Library | p50 | p99 | max | p99 ÷ ideal | Redis commands | commands ÷ ideal | requests | failures',
      rows,
    ),
    '',
    `redis-once's p99 vs the ideal's, repetition by repetition: ${perRep}.`,
    '',
    ...(first
      ? [
          `redis-once's first repetition: requests ${requests(first.byRequest)}; Redis commands ` +
            `${requests(first.byCommand)}.`,
          '',
        ]
      : []),
  ];
}

function s3(runs: ByPeer<FanoutRun>, config: Config): string[] {
  const { processes, callers, fnMs, leaseMs, killAfterMs, peers, reps } = config.s3;
  return [
    `## S3 — leader SIGKILLed ${ms(killAfterMs)} into a ${ms(fnMs)} fn, lease ${ms(leaseMs)} (${processes} × ${callers} callers, ${reps} repetitions side by side)`,
    '',
    table(
      'Library | kill → next fn start | completed executions per repetition | failures',
      peers.map((p) => [
        label(p),
        med(runs[p], (x) => x.takeoverMs, ms),
        (runs[p] ?? []).map((x) => x.completions).join(', '),
        failures(runs[p]),
      ]),
    ),
    '',
  ];
}

function s4(result: S4, config: Config): string[] {
  const { calls, peerMaxMs, peers } = config.s4;
  const once = over(result.warm['redis-once'], (x) => x.callsPerSec).median;
  return [
    '## S4 — cached path',
    '',
    `Warm: \`await initOnce(key, fn)\` in a loop in the process that made the key done (redis-once: ` +
      `${int(calls)} calls; peers, which read Redis on every call, stop after ${ms(peerMaxMs)}). Fresh: the ` +
      'first call of a new process (its client connected, its library created) on the done key.',
    '',
    table(
      'Library | warm calls/s | redis-once ÷ peer | fresh: first call | its requests | its Redis commands | failures',
      peers.map((p) => {
        const rate = over(result.warm[p], (x) => x.callsPerSec);
        const fresh = result.fresh[p];
        return [
          label(p),
          cell(rate, int),
          p === 'redis-once' ? '' : times(once / rate.median),
          med(fresh, (x) => x.firstCallMs, ms),
          requests(fresh?.[0]?.requests ?? {}),
          med(fresh, (x) => x.commands, int),
          failures([...(result.warm[p] ?? []), ...(fresh ?? [])]),
        ];
      }),
    ),
    '',
  ];
}

function s5(result: S5, config: Config): string[] {
  const { total, warmupKeys, coldKeys, peers } = config.s5;
  // Every peer measured, each (but the reference, last) as a ratio to the reference.
  const ref = peers[peers.length - 1] as PeerId;
  const bytes = (n: number) => (Number.isFinite(n) ? `${int(n)} B` : '—');
  const us = (n: number) => (Number.isFinite(n) ? `${n.toFixed(1)} µs` : '—');
  const one = (n: number) => n.toFixed(1);
  const rows = Object.entries(result.levels).flatMap(([level, byPeer]) =>
    (peers as PeerId[]).map((p, i) => [
      i === 0 ? int(Number(level)) : '',
      label(p),
      med(byPeer[p], (x) => x.keysPerSec, int),
      p !== ref
        ? cell(
            ratios(byPeer[p], byPeer[ref], (x) => x.keysPerSec),
            times,
          )
        : '',
      med(byPeer[p], (x) => x.heapPerKey, bytes),
      med(byPeer[p], (x) => x.commandsPerKey, one),
      med(byPeer[p], (x) => x.redisCpuUsPerKey, us),
      failures(byPeer[p]),
    ]),
  );
  const cold = (peers as PeerId[]).map((p) => [
    label(p),
    med(result.cold[p], (x) => x.keysPerSec, int),
    p !== ref
      ? cell(
          ratios(result.cold[p], result.cold[ref], (x) => x.keysPerSec),
          times,
        )
      : '',
    med(result.cold[p], (x) => x.commandsPerKey, one),
    med(result.cold[p], (x) => x.redisCpuUsPerKey, us),
    failures(result.cold[p]),
  ]);
  return [
    '## S5 — distinct keys from one process, fn returns at once',
    '',
    `${int(total)} keys per run with a fixed number in flight (after ${int(warmupKeys)} unmeasured keys), one new ` +
      "process per run. Heap/key: that process's live heap (gc() before every reading) at its highest while " +
      'that many new keys are in flight at once, minus the same before, per key; it includes what a library ' +
      "keeps for the keys of that wave already done (redis-once's memo of done values). Commands and Redis CPU " +
      "(INFO cpu, user + sys) per key: the server's side of each key, on the same two cores as the client.",
    '',
    table(
      'in flight | Library | keys/s | ratio | heap/key | Redis commands/key | Redis CPU/key | failures',
      rows,
    ),
    '',
    `Cold: a new process on a redis-server started for it (no script loaded), ${int(coldKeys)} keys at once.`,
    '',
    table('Library | keys/s | ratio | Redis commands/key | Redis CPU/key | failures', cold),
    '',
  ];
}

/** One repetition's outcome in a few words: "consistent", "2 values (processes: 3 + 1); …", "no value: …". */
function outcome(run: CpuRun): string {
  if (run.consistent) return 'consistent: one value';
  const names = new Map<string, number>();
  for (const error of run.errors) {
    const [, name = error, n = '1'] = /^(\w+).*?(?: \(×(\d+)\))?$/s.exec(error) ?? [];
    names.set(name, (names.get(name) ?? 0) + Number(n));
  }
  const why = [...names]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([name, n]) => `${name} ×${n}`)
    .join(', ');
  const rejected = `${run.rejected} of ${run.processes} calls rejected (${why})`;
  if (run.rejected === run.processes)
    return `no value: ${rejected}; a later process: ${run.later?.error?.split(':')[0] ?? '—'}`;
  const got = run.processes - run.rejected;
  const values =
    run.values === 1 ? 'one value' : `${run.values} values (processes: ${run.split.join(' + ')})`;
  const later =
    run.later?.value === undefined
      ? `; a later process: ${run.later?.error?.split(':')[0] ?? '—'}`
      : run.values === 1
        ? `; a later process gets it${run.later.executions ? ' after running fn' : ''}`
        : `; a later process gets the one ${run.keptBy} of them got`;
  return `${run.rejected ? `${rejected}, ${got} got ` : ''}${values}${later}`;
}

/** Each repetition's outcome once, with how many had it: "3 of 3: one value". */
function tally(words: string[]): string {
  const counts = new Map<string, number>();
  for (const word of words) counts.set(word, (counts.get(word) ?? 0) + 1);
  const of = (n: number) => (words.length > 1 ? `${n} of ${words.length}: ` : '');
  return [...counts].map(([word, n]) => `${of(n)}${word}`).join('; ');
}

function s6(runs: ByPeer<CpuRun>, config: Config): string[] {
  const { processes, leaseMs, busyMs, peers, reps } = config.s6;
  const once = runs['redis-once'];
  const s = (n: number) => (n / 1000).toFixed(2);
  const zero = (n: number) => (n === 0 ? '0' : ms(n));
  const rows = peers.map((p) => {
    const reps = runs[p];
    const had = over(reps, (x) => x.allValuesMs);
    const never = (reps ?? []).filter((x) => !Number.isFinite(x.allValuesMs)).length;
    const settled = `every call settled after ${med(reps, (x) => x.settledMs, ms)}`;
    const wall =
      had.n === 0
        ? `never (${settled})`
        : never > 0
          ? `${cell(had, ms)} in ${had.n} of ${reps?.length}; never in ${never} (calls rejected)`
          : cell(had, ms);
    // The repetition with the most executions (the first of them), so a bad one is not hidden.
    const worst = (reps ?? []).reduce<CpuRun | undefined>(
      (a, b) => (a && a.executions >= b.executions ? a : b),
      undefined,
    );
    const spans = worst?.spans ?? [];
    const wasted = over(reps, (x) => x.wastedBusyMs).max > 0;
    return [
      label(p),
      (reps ?? []).map((x) => x.executions).join(', '),
      (reps ?? []).map((x) => x.overlapped).join(', '),
      wasted ? med(reps, (x) => x.wastedBusyMs, zero) : 'none',
      wasted ? med(reps, (x) => x.wastedCpuMs, zero) : 'none',
      tally((reps ?? []).map(outcome)),
      wall,
      p === 'redis-once' || had.n === 0
        ? ''
        : cell(
            ratios(reps, once, (x) => x.allValuesMs),
            times,
          ),
      `${reps && reps.length > 1 ? `rep ${reps.indexOf(worst!) + 1}: ` : ''}${spans.map((x) => `P${x.process} ${s(x.from)}–${s(x.to)}`).join(', ')}`,
      failures(reps),
    ];
  });
  return [
    `## S6 — a CPU-bound init: fn blocks its event loop ${ms(busyMs)}, lease ${ms(leaseMs)} (${processes} processes, ${reps} repetition${reps === 1 ? '' : 's'})`,
    '',
    `For every repetition and peer, ${processes} new processes call initOnce(one key) at one moment, cold (no ` +
      `call before it). fn is a busy loop of ${ms(busyMs)} on the event loop (no await: a renewal timer on ` +
      'that thread cannot fire until it ends), then returns a value naming that execution, which the peer ' +
      'writes as the result. Once every call settled, one more process (forked with the others, idle until ' +
      'then) calls the same path: what it gets is the value the cluster kept. **Executions**: fns that ran ' +
      'to their end, in any process (the later one included). **Overlapped**: executions that began while ' +
      'an earlier one was still running. **Wasted**: the busy loops of every execution after the first, ' +
      'their wall time and the CPU time the processes got for them (on shared cores). **Outcome**: ' +
      "*consistent* when every process and the later one got the same value and the later one's fn did " +
      'not run; otherwise how many calls rejected and why, how many distinct values the others were given ' +
      '(how many processes got each), and which of them the later process got (the one the cluster kept). ' +
      '**Every process had a value**: the start → the last of them resolved (with whichever value it got).',
    '',
    table(
      'Library | executions per repetition | overlapped | wasted busy loop | its CPU time | outcome | every process had a value | wall ÷ redis-once | executions in the repetition with the most (process, s after the start) | failures',
      rows,
    ),
    '',
  ];
}

/** The few lines printed at the end of a run. */
export function summary(checks: Check[]): string {
  return checks
    .map((c) => `${c.met === undefined ? '·' : c.met ? '✓' : '✗'} ${c.scenario} ${c.target}: ${c.measured}`)
    .join('\n');
}
