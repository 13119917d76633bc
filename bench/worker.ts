/**
 * A bench worker: one child process standing for one node of a cluster. It runs one job at a time,
 * in three steps the parent drives, so that the parent can take Redis snapshots between them:
 *   prepare — create the peer (connect, and for `cached` make the key done) → 'ready'
 *   go      — measure → 'result'
 *   release — close the peer → 'released'
 * 'ready' and 'released' carry the requests this process sent during prepare, and since go.
 * Run as: node --import tsx --import ./scripts/register-lua.mjs bench/worker.ts <redis-url>
 */
import { Redis } from 'ioredis';
import { now, sleep } from './clock.js';
import { ignoreClient, installRequestCounter, takeRequestCounts } from './counting.js';
import { connect } from './peers/connect.js';
import { createPeer } from './peers/create.js';
import type { Peer } from './peers/peer.js';
import type {
  CachedJob,
  Command,
  FanoutJob,
  FanoutResult,
  FnRun,
  FnSpec,
  FreshJob,
  Job,
  JobResult,
  Message,
  ThroughputJob,
} from './protocol.js';

installRequestCounter();
const tracing = process.env.BENCH_TRACE === '1';
if (tracing) traceMessages();

const redisUrl = process.argv[2];
if (!redisUrl) throw new Error('usage: worker.ts <redis-url>');
const counters = await connect(redisUrl);
ignoreClient(counters);

/** Errors no caller awaited (a library's timer throwing, say): reported with the job, not a crash. */
let stray: string[] = [];
process.on('uncaughtException', (error) => stray.push(`uncaught: ${describe(error)}`));
process.on('unhandledRejection', (error) => stray.push(`unhandled rejection: ${describe(error)}`));
// The parent is gone (even killed with SIGKILL): nothing else would ever end this process.
process.on('disconnect', () => process.exit(0));

let peer: Peer | undefined;
let measure: (() => Promise<JobResult>) | undefined;

function send(message: Message): void {
  process.send?.(message);
}

process.on('message', (command: Command) => {
  handle(command).catch((error: unknown) => send({ type: 'error', message: describe(error) }));
});
send({ type: 'up' });

async function handle(command: Command): Promise<void> {
  switch (command.type) {
    case 'prepare': {
      const { job } = command;
      stray = [];
      takeRequestCounts();
      peer = await createPeer(job.peer, job.options);
      measure = await prepare(job, peer);
      send({ type: 'ready', requests: takeRequestCounts() });
      return;
    }
    case 'go': {
      if (!measure) throw new Error('go before prepare');
      takeRequestCounts(); // count from here: connecting and preparing were counted with 'ready'
      const result = await measure();
      send({ type: 'result', result });
      return;
    }
    case 'release': {
      const requests = takeRequestCounts();
      await peer?.close();
      peer = undefined;
      measure = undefined;
      send({ type: 'released', requests });
      return;
    }
  }
}

/** Does what must happen before the parent's first snapshot; returns the measured part. */
async function prepare(job: Job, peer: Peer): Promise<() => Promise<JobResult>> {
  switch (job.kind) {
    case 'fanout':
      return () => fanout(job, peer);
    case 'cached': {
      let runs = 0;
      const fn = async () => ++runs;
      await peer.initOnce(job.key, fn);
      return () => cached(job, peer, fn, () => runs - 1);
    }
    case 'fresh':
      return () => fresh(job, peer);
    case 'throughput':
      return () => throughput(job, peer);
  }
}

/** The scenarios' init: counted in Redis at start and at completion, timed for release latency. */
function countedFn(spec: FnSpec, runs: FnRun[]): () => Promise<{ pid: number }> {
  return async () => {
    const run: FnRun = { startedAt: now() };
    runs.push(run);
    send({ type: 'fn-start', at: run.startedAt });
    await counters.hincrby(spec.counterKey, 'starts', 1);
    await sleep(spec.ms);
    await counters.hincrby(spec.counterKey, 'completions', 1);
    run.finishedAt = now();
    return { pid: process.pid };
  };
}

async function fanout(job: FanoutJob, peer: Peer): Promise<JobResult> {
  const runs: FnRun[] = [];
  const fn = countedFn(job.fn, runs);
  const resolvedAt: number[] = [];
  const failures: string[] = [];
  await Promise.all(
    Array.from({ length: job.callers }, () =>
      peer.initOnce(job.key, fn).then(
        () => {
          resolvedAt.push(now());
        },
        (error: unknown) => {
          failures.push(describe(error));
        },
      ),
    ),
  );
  const result: FanoutResult = { kind: 'fanout', resolvedAt, failures: [...failures, ...stray], runs };
  if (tracing) result.messageAt = messagesAt.splice(0);
  return result;
}

async function cached(
  job: CachedJob,
  peer: Peer,
  fn: () => Promise<number>,
  extraRuns: () => number,
): Promise<JobResult> {
  const failures: string[] = [];
  const started = performance.now();
  const deadline = started + job.maxMs;
  let calls = 0;
  try {
    // Checking the clock every 1,024 calls keeps it out of the measured loop.
    while (calls < job.calls) {
      await peer.initOnce(job.key, fn);
      calls++;
      if ((calls & 1023) === 0 && performance.now() > deadline) break;
    }
  } catch (error) {
    failures.push(describe(error));
  }
  const elapsedMs = performance.now() - started;
  return { kind: 'cached', calls, elapsedMs, fnRuns: extraRuns(), failures: [...failures, ...stray] };
}

async function fresh(job: FreshJob, peer: Peer): Promise<JobResult> {
  let fnRuns = 0;
  const failures: string[] = [];
  const started = performance.now();
  try {
    await peer.initOnce(job.key, async () => ++fnRuns);
  } catch (error) {
    failures.push(describe(error));
  }
  const firstCallMs = performance.now() - started;
  return { kind: 'fresh', firstCallMs, fnRuns, failures: [...failures, ...stray] };
}

async function throughput(job: ThroughputJob, peer: Peer): Promise<JobResult> {
  const runs = new Uint32Array(job.keys);
  const failures: string[] = [];
  let next = 0;
  // `concurrency` lanes, each taking the next key as soon as its last one is done.
  const lane = async () => {
    while (next < job.keys) {
      const index = next++;
      try {
        await peer.initOnce(`${job.keyPrefix}:${index}`, async () => {
          runs[index]!++;
          return index;
        });
      } catch (error) {
        if (failures.length < 10) failures.push(describe(error));
      }
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: job.concurrency }, lane));
  const elapsedMs = performance.now() - started;
  const wrongRuns = runs.reduce((wrong, count) => wrong + (count === 1 ? 0 : 1), 0);
  return { kind: 'throughput', keys: job.keys, elapsedMs, wrongRuns, failures: [...failures, ...stray] };
}

/**
 * BENCH_TRACE=1 (diagnosis, not the bench): when each pub/sub message reached this process, to split
 * a release latency into "delivered" and "woke its callers".
 */
const messagesAt: number[] = [];
function traceMessages(): void {
  const proto = Redis.prototype as unknown as { emit(event: string | symbol, ...args: unknown[]): boolean };
  const emit = proto.emit;
  proto.emit = function (event, ...args) {
    if (event === 'message' || event === 'smessage') messagesAt.push(now());
    return emit.call(this, event, ...args);
  };
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
