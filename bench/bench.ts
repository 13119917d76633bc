/**
 * `npm run bench [-- --quick] [-- --only=S1,S5]`
 *
 * Starts its own redis-server (scripts/redis-server.ts, the launcher the tests and the demo use),
 * runs S1, S3, S4, S5 and S6 against redis-once and its peers, each run in processes forked for it, and
 * writes bench/RESULTS.md (and every number in bench/results/raw.json, not committed; a run with --only
 * or BENCH_CPU_PROF writes its report there too, leaving RESULTS.md alone). Progress goes
 * to stderr, the targets to stdout. Exits 1 if redis-once ran an init other than exactly once.
 *
 * Profiling: BENCH_CPU_PROF=dir makes every worker write a CPU profile of its measured part there.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { Redis } from 'ioredis';
import { LocalRedis } from '../scripts/redis-server.js';
import { cpuBusy, cpuSeconds, environment, killWorkers } from './harness.js';
import { checkTargets, markdown, type Results, summary } from './report.js';
import { s6 } from './s6.js';
import { type Context, FULL, QUICK, s1, s3, s4, s5 } from './scenarios.js';

const argv = process.argv.slice(2);
const config = argv.includes('--quick') ? QUICK : FULL;
const only = argv
  .find((arg) => arg.startsWith('--only='))
  ?.slice('--only='.length)
  .split(',');
const started = performance.now();
const log = (line: string) =>
  process.stderr.write(`${((performance.now() - started) / 1000).toFixed(1).padStart(6)}s ${line}\n`);
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => {
    killWorkers();
    process.exit(130); // the launcher's exit handler stops redis-server
  });

const busyBefore = await cpuBusy(); // measured before anything of ours runs
const cpuAtStart = cpuSeconds();
const server = await LocalRedis.start({ name: 'bench' });
const admin = new Redis(server.url);
const version = /redis_version:(\S+)/.exec(await admin.info('server'))?.[1] ?? 'unknown';
log(`redis-server ${version} on ${server.url}; ${config.quick ? 'QUICK run' : 'full run'}`);
const results: Results = {
  env: environment(version, busyBefore),
  config,
  wallMs: 0,
  violations: [],
  errors: [],
};
const ctx: Context = {
  server,
  admin,
  config,
  log,
  violation: (scenario, peer, rep, detail) => {
    results.violations.push({ scenario, peer, rep, detail });
    log(`VIOLATION ${scenario} ${peer} rep ${rep}: ${detail}`);
  },
};
const scenarios = {
  S1: async () => (results.s1 = await s1(ctx)),
  S3: async () => (results.s3 = await s3(ctx)),
  S4: async () => (results.s4 = await s4(ctx)),
  S5: async () => (results.s5 = await s5(ctx)),
  S6: async () => (results.s6 = await s6(ctx)),
};
try {
  for (const [name, run] of Object.entries(scenarios)) {
    if (only && !only.includes(name)) continue;
    try {
      await run();
    } catch (error) {
      // One scenario that breaks is reported; the others still run.
      results.errors.push(`${name}: ${error instanceof Error ? error.message : String(error)}`);
      log(`ERROR ${name}: ${error instanceof Error ? error.stack : String(error)}`);
    }
  }
} finally {
  killWorkers();
  admin.disconnect();
  await server.stop();
}
results.wallMs = performance.now() - started;
const cpuAtEnd = cpuSeconds(); // every child has exited: its CPU time is counted as ours
if (cpuAtStart && cpuAtEnd) {
  const others = cpuAtEnd.machine - cpuAtStart.machine - (cpuAtEnd.ours - cpuAtStart.ours);
  results.env.othersDuring = Math.max(0, others / ((results.wallMs / 1000) * os.cpus().length));
}
const checks = checkTargets(results);
const dir = new URL('.', import.meta.url);
// A partial or profiled run does not replace the committed report: it goes beside raw.json.
const report = only || process.env.BENCH_CPU_PROF ? 'results/RESULTS.md' : 'RESULTS.md';
mkdirSync(new URL('results/', dir), { recursive: true });
writeFileSync(new URL(report, dir), markdown(results, checks));
writeFileSync(new URL('results/raw.json', dir), `${JSON.stringify(results, null, 1)}\n`);
log(`wrote bench/${report} and bench/results/raw.json`);
console.log(`${summary(checks)}\nwall time ${(results.wallMs / 1000).toFixed(0)} s`);
if (results.violations.some((v) => v.peer === 'redis-once')) process.exitCode = 1;
