/**
 * One process of the randomized soak (test/chaos/random-soak.test.ts): it walks a list of keys in its
 * own order, `callers` concurrent callers per key, until told to stop; fn sleeps a little, writes the
 * fencing ledger and returns its token. It reports, per key, what each caller got, and any unhandled
 * rejection; told to exit, it closes and must end by itself (nothing left open).
 */
import { createOnce, type OnceContext } from '../../src/index.js';
import { writeLedger } from './ledger.js';
import { seededRandom } from './random.js';

export interface SoakWorkerConfig {
  url: string;
  namespace: string;
  nodeId: string;
  keys: string[];
  /** This process's walk through the keys, and fn's durations, come from it. */
  seed: number;
  callers: number;
  leaseMs: number;
  redisTimeoutMs: number;
  waitTimeoutMs: number;
  ledgerUrl: string;
}

export type SoakEvent =
  | { type: 'ready' }
  | { type: 'key'; key: string; values: number[]; errors: string[]; fnEnds: number; ms: number }
  | { type: 'unhandled'; message: string }
  | { type: 'stopped' };

const config = JSON.parse(process.argv[2] ?? '{}') as SoakWorkerConfig;
const send = (event: SoakEvent) => {
  if (process.connected) process.send?.(event);
};
process.on('unhandledRejection', (reason) => send({ type: 'unhandled', message: String(reason) }));
process.on('uncaughtException', (error) => {
  send({ type: 'unhandled', message: `uncaught: ${error.stack ?? error}` });
  process.exitCode = 70;
});

const next = seededRandom(config.seed);
// Every process walks the keys in nearly the same order (swaps within windows of 4), so they contend
// for the same keys at the same time: leaders, followers and takeovers, where the faults land.
const order = [...config.keys];
for (let start = 0; start < order.length; start += 4) {
  for (let i = Math.min(start + 3, order.length - 1); i > start; i--) {
    const j = start + Math.floor(next() * (i - start + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
}

const once = createOnce({
  redis: config.url,
  namespace: config.namespace,
  nodeId: config.nodeId,
  leaseMs: config.leaseMs,
  redisTimeoutMs: config.redisTimeoutMs,
  waitTimeoutMs: config.waitTimeoutMs,
  maxAttempts: 1_000,
});

let stopping = false;
let fnEnds = 0;

async function fn(ctx: OnceContext): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, 20 + Math.floor(next() * 130)));
  await writeLedger(config.ledgerUrl, {
    key: `${config.namespace}:${ctx.key}`,
    token: ctx.fencingToken,
    by: config.nodeId,
  }).catch(() => false);
  fnEnds++;
  return ctx.fencingToken;
}

async function walk(): Promise<void> {
  for (const key of order) {
    if (stopping) break;
    const started = performance.now();
    fnEnds = 0;
    const outcomes = await Promise.allSettled(
      Array.from({ length: config.callers }, () => once.run(key, fn)),
    );
    send({
      type: 'key',
      key,
      values: outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : [])),
      errors: outcomes.flatMap((o) =>
        o.status === 'rejected'
          ? [`${(o.reason as Error).name}: ${(o.reason as Error).message}`.slice(0, 300)]
          : [],
      ),
      fnEnds,
      ms: performance.now() - started,
    });
  }
}

process.on('message', async (message: { type: string }) => {
  if (message.type === 'go') {
    await walk();
    send({ type: 'stopped' });
  }
  if (message.type === 'stop') stopping = true;
  if (message.type === 'exit') {
    await once.close();
    process.disconnect?.();
    // Nothing else: the process must end by itself, with no timer, socket or subscription left.
  }
});

send({ type: 'ready' });
