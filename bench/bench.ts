/**
 * `npm run bench [-- --quick] [-- --peers=redis-once,ideal,…] [-- --out=dir]`
 *
 * Starts its own redis-server and a pool of worker processes, runs S1–S5 against redis-once and its
 * peers, and writes bench/RESULTS.md, two SVG charts beside it, and bench/results/raw.json (every
 * number, for a closer look; not committed). Progress goes to stderr, a short summary to stdout.
 * Every child process is stopped at the end, on error and on Ctrl-C. Exits 1 only if redis-once
 * itself ran an init other than exactly once; a peer that does is reported, not fatal.
 *
 * Profiling: `node --cpu-prof --import tsx --import ./scripts/register-lua.mjs bench/bench.ts` also
 * profiles every worker (they inherit the flags and exit cleanly). BENCH_TRACE=1 makes fan-out runs
 * record when each process received its pub/sub message (FanoutOutcome.trace, in raw.json).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { killAll } from './children.js';
import { configFrom } from './config.js';
import { cpuBusy, environment, loadAverage } from './env.js';
import { PEERS } from './peers/peer.js';
import { commandsVsDurationSpec, latencyCdfSpec, renderSvg } from './report/charts.js';
import { CHARTS, markdown } from './report/markdown.js';
import { summary } from './report/summary.js';
import { largestShape, type Results } from './results.js';
import type { Context } from './scenarios/context.js';
import { s1Fanout } from './scenarios/s1-fanout.js';
import { s2Duration } from './scenarios/s2-duration.js';
import { s3Takeover } from './scenarios/s3-takeover.js';
import { s4Cached } from './scenarios/s4-cached.js';
import { s5Throughput } from './scenarios/s5-throughput.js';
import { warmUp } from './scenarios/warmup.js';
import { isRenewal, requestLabel, scriptNames } from './script-names.js';
import { RedisServer } from './server.js';
import { cdf, summarize } from './stats.js';
import { checkTargets } from './targets.js';
import { WorkerPool } from './workers.js';

const argv = process.argv.slice(2);
const config = configFrom(argv);
const outDir =
  argv.find((arg) => arg.startsWith('--out='))?.slice('--out='.length) ??
  fileURLToPath(new URL('.', import.meta.url));
const started = performance.now();
const log = (line: string) =>
  process.stderr.write(`${((performance.now() - started) / 1000).toFixed(1).padStart(6)}s ${line}\n`);

let server: RedisServer | undefined;
let pool: WorkerPool | undefined;
try {
  log(
    `redis-once bench (${config.quick ? 'QUICK: 1 repetition, fewer callers and durations' : `full: ${config.reps} repetitions`})`,
  );
  // Measured before anything of ours runs: what else is using the CPU.
  const busyBefore = await cpuBusy();
  server = await RedisServer.start();
  pool = new WorkerPool(server.url);
  await pool.warm(Math.max(...config.s1.shapes.map((s) => s.processes)));
  log(`redis-server ${server.version} on ${server.url}; workers ready`);

  const results: Results = {
    env: environment(server.version, busyBefore),
    config,
    wallMs: 0,
    violations: [],
    errors: [],
  };
  const ctx: Context = {
    server,
    pool,
    config,
    progress: log,
    violation: (v) => {
      results.violations.push(v);
      log(`VIOLATION ${v.scenario} ${v.peer} rep ${v.rep}: ${v.detail}`);
    },
  };
  // A scenario that breaks is recorded and the next one runs: one bad peer must not cost the report.
  const scenarios = [
    ['warm-up', () => warmUp(ctx)],
    ['S1', async () => (results.s1 = await s1Fanout(ctx))],
    ['S2', async () => (results.s2 = await s2Duration(ctx))],
    ['S3', async () => (results.s3 = await s3Takeover(ctx))],
    ['S4', async () => (results.s4 = await s4Cached(ctx))],
    ['S5', async () => (results.s5 = await s5Throughput(ctx))],
  ] as const;
  for (const [name, run] of scenarios) {
    try {
      await run();
    } catch (error) {
      const message = `${name}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`;
      results.errors.push(message.split('\n')[0]!);
      log(`ERROR ${message}`);
    }
  }
  results.wallMs = performance.now() - started;
  results.env.loadEnd = loadAverage();

  const names = scriptNames();
  const renewal = (kind: string) => isRenewal(kind, names);
  const label = (kind: string) => requestLabel(kind, names);
  const checks = checkTargets(results, renewal, label);
  mkdirSync(join(outDir, 'results'), { recursive: true });
  writeFileSync(join(outDir, 'RESULTS.md'), markdown(results, checks, { label, isRenewal: renewal }));
  await writeCharts(results, outDir);
  writeFileSync(join(outDir, 'results', 'raw.json'), `${JSON.stringify(results, rounded)}\n`);
  log(`wrote ${join(outDir, 'RESULTS.md')}, ${CHARTS.cdf}, ${CHARTS.commands}, results/raw.json`);

  console.log(summary(results, checks));
  console.log(`wall time ${(results.wallMs / 1000).toFixed(1)} s${config.quick ? ' (quick run)' : ''}`);
  if (results.violations.some((v) => v.peer === 'redis-once')) process.exitCode = 1;
} catch (error) {
  console.error(error);
  process.exitCode = 2;
} finally {
  await pool?.close();
  await server?.stop();
  killAll();
}

async function writeCharts(results: Results, dir: string): Promise<void> {
  const shape = largestShape(results.s1);
  if (shape) {
    const series = results.config.peers.map((peer) => ({
      library: PEERS[peer].label,
      // All repetitions' callers together: the distribution, not one lucky or unlucky run.
      points: cdf((shape.runs[peer] ?? []).flatMap((run) => run.latencies)),
    }));
    const title = `S1 release latency, ${shape.callers.toLocaleString('en-US')} callers (${shape.processes} processes), fn ${results.s1!.fnMs} ms`;
    writeFileSync(join(dir, CHARTS.cdf), await renderSvg(latencyCdfSpec(title, series), title));
  }
  const s2 = results.s2;
  if (s2) {
    const rows = results.config.s2.peers.flatMap((peer) =>
      s2.durations.map((fnMs, i) => {
        const s = summarize((s2.runs[peer]?.[i] ?? []).map((run) => run.commands));
        return { library: PEERS[peer].label, fnMs, median: s.median, min: s.min, max: s.max };
      }),
    );
    const callers = s2.shape.processes * s2.shape.callersPerProcess;
    const title = `S2 Redis commands per run vs fn duration, ${callers} callers, lease ${s2.leaseMs} ms`;
    writeFileSync(join(dir, CHARTS.commands), await renderSvg(commandsVsDurationSpec(title, rows), title));
  }
}

/** Keeps raw.json readable: latencies to 10 µs, rates to the unit. */
function rounded(_key: string, value: unknown): unknown {
  return typeof value === 'number' && !Number.isInteger(value) ? Math.round(value * 100) / 100 : value;
}
