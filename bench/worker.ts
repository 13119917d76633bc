/**
 * A bench worker: one child process standing for one node of a cluster, forked for one job (its JSON
 * is argv[2]; see protocol.ts). It counts every request any ioredis client in it sends — the peer's
 * own clients, their duplicates, and redlock's or redis-semaphore's calls through them — by patching
 * the one method they all go through: the client's view, where one EVALSHA is one request.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { createPeer, type Peer } from './peers.js';
import {
  type CachedResult,
  type CpuExecution,
  type CpuResult,
  describe,
  type FanoutResult,
  type FreshResult,
  type FromWorker,
  type Job,
  type JobResult,
  type KeysResult,
  now,
  type Requests,
  sleep,
  type ToWorker,
} from './protocol.js';

let requests: Requests = {};
type SendCommand = (this: Redis, command: { name: string; args: unknown[] }, stream?: unknown) => unknown;
const proto = Redis.prototype as unknown as { sendCommand: SendCommand };
const sendCommand = proto.sendCommand;
proto.sendCommand = function (command, stream) {
  const lower = command.name.toLowerCase();
  const name = lower === 'evalsha' ? `evalsha:${String(command.args[0]).slice(0, 8)}` : lower;
  requests[name] = (requests[name] ?? 0) + 1;
  return sendCommand.call(this, command, stream);
};
function takeRequests(): Requests {
  const taken = requests;
  requests = {};
  return taken;
}

const send = (message: FromWorker) => process.send?.(message);
/** Errors no caller awaited (a library's timer throwing, say): reported with the result. */
const failures: string[] = [];
const fail = (error: unknown) => {
  if (failures.length < 20) failures.push(describe(error));
};
process.on('uncaughtException', (error) => fail(`uncaught: ${describe(error)}`));
process.on('unhandledRejection', (error) => fail(`unhandled rejection: ${describe(error)}`));
// The parent is done with us, or gone (even SIGKILLed).
process.on('disconnect', () => process.exit(0));

try {
  const job = JSON.parse(process.argv[2]!) as Job;
  const peer = await createPeer(job.peer, job.options);
  const measure = await prepare(job, peer);
  process.once('message', async (message: ToWorker) => {
    await sleep(message.at - now()); // every worker of a run starts at the same moment
    takeRequests(); // count from here, not the connecting and preparing
    const result = await profiled(`${job.kind}-${job.peer}`, measure);
    if (job.kind === 'keys' && job.memory)
      (result as KeysResult).heapPerKey = await heapPerKey(peer, job.inFlight);
    // Unsubscribes and releases sent once callers resolved are part of the cost: let them go out.
    await sleep(100);
    send({ type: 'result', result, requests: takeRequests(), failures });
  });
  send({ type: 'ready' });
} catch (error) {
  send({ type: 'error', message: describe(error) });
}

/**
 * BENCH_CPU_PROF=dir: a V8 CPU profile of the measured part only (from 'go' to the result, sampled
 * every 50 µs), written to dir/<kind>-<peer>-<pid>.cpuprofile; open it in Chrome DevTools.
 */
async function profiled<T>(name: string, work: () => Promise<T>): Promise<T> {
  const dir = process.env.BENCH_CPU_PROF;
  if (!dir) return work();
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 50 });
  await session.post('Profiler.start');
  try {
    return await work();
  } finally {
    const { profile } = await session.post('Profiler.stop');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `${name}-${process.pid}.cpuprofile`), JSON.stringify(profile));
  }
}

/** Does what must happen before the parent's first snapshot; returns the measured part. */
async function prepare(job: Job, peer: Peer): Promise<() => Promise<JobResult>> {
  let fnRuns = 0;
  const count = async () => ++fnRuns;
  switch (job.kind) {
    case 'fanout':
      // A process has led something of its own (at start-up, say) before it waits on another's key.
      if (job.warmup) await peer.initOnce(`warmup:${process.pid}`, async () => process.pid);
      return () => fanout(peer, job.key, job.callers, job.fnMs);
    case 'cached':
      await peer.initOnce(job.key, count); // this process makes the key done, then loops on it
      return async (): Promise<CachedResult> => {
        const started = performance.now();
        const deadline = started + job.maxMs;
        let calls = 0;
        try {
          // Plain `await once.run(key, fn)`, as users write it; the clock is read every 1,024 calls.
          while (calls < job.calls && ((calls & 1023) !== 0 || performance.now() < deadline)) {
            await peer.initOnce(job.key, count);
            calls++;
          }
        } catch (error) {
          fail(error);
        }
        return { calls, elapsedMs: performance.now() - started, fnRuns: fnRuns - 1 };
      };
    case 'fresh':
      return async (): Promise<FreshResult> => {
        const started = performance.now();
        await peer.initOnce(job.key, count).catch(fail);
        return { firstCallMs: performance.now() - started, fnRuns };
      };
    case 'cpu':
      return () => cpuBound(peer, job.key, job.busyMs); // cold: nothing before the one call
    case 'keys':
      if (job.warmupKeys > 0) await keys(peer, 'warmup', job.warmupKeys, job.inFlight);
      return () => keys(peer, 'key', job.total, job.inFlight);
  }
}

async function fanout(peer: Peer, key: string, callers: number, fnMs: number): Promise<FanoutResult> {
  const result: FanoutResult = { resolvedAt: [], finishedAt: undefined, fnRuns: 0 };
  const fn = async () => {
    send({ type: 'fn-start', at: now() });
    await sleep(fnMs);
    result.fnRuns++;
    result.finishedAt = now();
    return process.pid;
  };
  const call = () => peer.initOnce(key, fn).then(() => void result.resolvedAt.push(now()), fail);
  await Promise.all(Array.from({ length: callers }, call));
  return result;
}

/**
 * S6: one call of the key, whose fn blocks this process's event loop with a busy loop for `busyMs`
 * (no await inside: timers, sockets and a library's renewals on this thread wait for it), then returns
 * a value naming this execution, which the peer writes as the key's result.
 */
async function cpuBound(peer: Peer, key: string, busyMs: number): Promise<CpuResult> {
  const executions: CpuExecution[] = [];
  const fn = async () => {
    const startedAt = now();
    send({ type: 'fn-start', at: startedAt });
    const cpu = process.cpuUsage();
    const from = performance.now();
    while (performance.now() - from < busyMs) {
      // spin: nothing else runs on this thread until the loop ends
    }
    const busy = performance.now() - from;
    const { user, system } = process.cpuUsage(cpu);
    const value = `${process.pid}:${executions.length + 1}`;
    executions.push({ startedAt, endedAt: now(), busyMs: busy, cpuMs: (user + system) / 1000, value });
    return value;
  };
  try {
    const value = String(await peer.initOnce(key, fn));
    return { executions, value, error: undefined, settledAt: now() };
  } catch (error) {
    return { executions, value: undefined, error: describe(error), settledAt: now() };
  }
}

/** `total` distinct keys through `inFlight` lanes, each taking the next key once its last is done. */
async function keys(peer: Peer, prefix: string, total: number, inFlight: number): Promise<KeysResult> {
  const runs = new Uint8Array(total);
  let next = 0;
  const lane = async () => {
    while (next < total) {
      const index = next++;
      await peer.initOnce(`${prefix}:${index}`, async () => ++runs[index]!).catch(fail);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: Math.min(inFlight, total) }, lane));
  const elapsedMs = performance.now() - started;
  return { elapsedMs, wrongRuns: runs.filter((n) => n !== 1).length, heapPerKey: undefined };
}

/**
 * `inFlight` new keys at once; the live heap (gc() before every reading) at its highest while they
 * are in flight, minus the live heap before, per key. Needs --expose-gc.
 */
async function heapPerKey(peer: Peer, inFlight: number): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('heapPerKey needs node --expose-gc');
  const live = () => {
    gc();
    return process.memoryUsage().heapUsed;
  };
  const before = live();
  let peak = before;
  let settled = false;
  const all = Promise.all(
    Array.from({ length: inFlight }, (_, i) => peer.initOnce(`memory:${i}`, async () => i).catch(fail)),
  ).then(() => {
    settled = true;
  });
  while (!settled) {
    peak = Math.max(peak, live());
    await new Promise((resolve) => setImmediate(resolve));
  }
  await all;
  return (peak - before) / inFlight;
}
