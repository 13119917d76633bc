/**
 * A child process playing one node of the cluster: it calls `runDetailed` from `callers` concurrent
 * callers and reports everything it sees over IPC. Started by `startWorker` (worker.ts).
 *
 * fn's body stands in for real work: it takes `fnMs`, or until its lease is lost when `untilAborted`.
 */
import { createOnce, type OnceContext } from '../../src/index.js';
import { connect } from './clients.js';
import { writeLedger } from './ledger.js';
import type { WorkerConfig, WorkerEvent } from './worker.js';

const config = JSON.parse(process.argv[2] ?? '{}') as WorkerConfig;
// After its callers settled the worker disconnects; an fn that ignores its signal may still run on.
const send = (event: WorkerEvent) => {
  if (process.connected) process.send?.(event);
};

const client = await connect(config.client ?? 'url', config.url);
const once = createOnce({
  redis: client.spec,
  doneTtlMs: config.doneTtlMs,
  namespace: config.namespace,
  leaseMs: config.leaseMs,
  maxStallMs: config.maxStallMs,
  maxAttempts: config.maxAttempts,
  redisTimeoutMs: config.redisTimeoutMs,
  nodeId: config.nodeId,
});

async function fn(ctx: OnceContext): Promise<{ by: string; token: number }> {
  send({
    type: 'fn-start',
    nodeId: config.nodeId,
    fencingToken: ctx.fencingToken,
    attempt: ctx.attempt,
    previous: ctx.previous ? { ...ctx.previous } : null,
  });
  ctx.signal.addEventListener('abort', () => {
    send({
      type: 'fn-aborted',
      nodeId: config.nodeId,
      reason: (ctx.signal.reason as Error)?.name ?? 'unknown',
    });
  });
  if (config.blockMs) {
    const until = performance.now() + config.blockMs;
    while (performance.now() < until) {
      // CPU-bound work: no timer, no I/O, no renewal runs meanwhile.
    }
  }
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, config.fnMs);
    if (config.untilAborted) {
      ctx.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve();
      });
    }
  });
  if (config.failAttempts?.includes(ctx.attempt)) throw new Error(`attempt ${ctx.attempt} failed on purpose`);
  if (config.hold) {
    const released = new Promise<void>((resolve) => {
      const onMessage = (message: { type: string }) => {
        if (message.type !== 'release') return;
        process.off('message', onMessage);
        resolve();
      };
      process.on('message', onMessage);
    });
    send({ type: 'fn-holding', nodeId: config.nodeId, fencingToken: ctx.fencingToken });
    await released;
  }
  if (config.ledgerUrl) {
    const write = { key: `${config.namespace}:${config.key}`, token: ctx.fencingToken, by: config.nodeId };
    const accepted = await writeLedger(config.ledgerUrl, write);
    send({ type: 'ledger', nodeId: config.nodeId, fencingToken: ctx.fencingToken, accepted });
  }
  send({ type: 'fn-end', nodeId: config.nodeId, fencingToken: ctx.fencingToken });
  return { by: config.nodeId, token: ctx.fencingToken };
}

process.on('message', async (message: { type: string }) => {
  if (message.type !== 'go') return;
  const calls = Array.from({ length: config.callers }, () =>
    once.runDetailed(config.key, fn).then(
      (result) => send({ type: 'result', nodeId: config.nodeId, result }),
      (error: Error) =>
        send({ type: 'error', nodeId: config.nodeId, name: error.name, message: error.message }),
    ),
  );
  await Promise.all(calls);
  await once.close();
  await client.close();
  send({ type: 'finished', nodeId: config.nodeId });
  process.disconnect?.();
});

if (config.warmUp) {
  await once.run(`warm-up:${config.nodeId}`, () => true);
  // As in a process that has led before: its standby thread up (it starts with a first lead and, from
  // these sources on a loaded machine, can take most of a 1 s lease to boot).
  await (once as unknown as { standby?: { whenReady(): Promise<void> } }).standby?.whenReady();
}
send({ type: 'ready', nodeId: config.nodeId });
