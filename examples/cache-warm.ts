/**
 * Cache warming across replicas, from Node.js code: every replica calls `warmProducts()` on start-up;
 * exactly one loads the catalogue into Redis, the others wait for it and get the same summary. The
 * done state expires after an hour, so the next start-up after that warms again.
 *
 * Run it (several at once, to see one warm and the others wait):
 *   REDIS_URL=redis://127.0.0.1:6379 node --import tsx --import ./scripts/register-lua.mjs examples/cache-warm.ts
 *
 * In your app, import from 'redis-once' (this file imports the source so it typechecks in the repo).
 */

import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { createOnce, type OnceContext, OnceFailedError, OnceTimeoutError } from '../src/index.js';

interface Product {
  id: number;
  name: string;
  priceCents: number;
}

export interface WarmSummary {
  products: number;
  fencingToken: number;
  warmedAt: string;
}

// Our client: redis-once uses it and never closes it.
const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: 2 });

const once = createOnce({
  redis,
  namespace: 'shop',
  leaseMs: 15_000,
  waitTimeoutMs: 60_000,
  doneTtlMs: 60 * 60_000,
});

/** Stands in for a slow database query. */
async function loadCatalogue(signal: AbortSignal): Promise<Product[]> {
  await sleep(1_500, undefined, { signal });
  return Array.from({ length: 500 }, (_, i) => ({
    id: i + 1,
    name: `product ${i + 1}`,
    priceCents: 100 + i,
  }));
}

async function warm(ctx: OnceContext): Promise<WarmSummary> {
  if (ctx.previous) {
    console.log(`previous warm-up by ${ctx.previous.owner} ${ctx.previous.outcome}; starting over`);
  }
  // ctx.signal aborts if this replica loses its lease (Redis unreachable, process paused): stop then.
  const products = await loadCatalogue(ctx.signal);
  const pipeline = redis.pipeline();
  for (const product of products) {
    pipeline.set(`shop:product:${product.id}`, JSON.stringify(product), 'EX', 2 * 3600);
  }
  // The fencing token beside the data: a reader (or a later writer) can tell which attempt wrote it,
  // and a writer holding a lower token than the one stored must not overwrite it.
  pipeline.set('shop:product:fencing-token', String(ctx.fencingToken));
  if (ctx.signal.aborted) throw ctx.signal.reason;
  await pipeline.exec();
  return { products: products.length, fencingToken: ctx.fencingToken, warmedAt: new Date().toISOString() };
}

/** Every replica calls this; the catalogue is loaded once, cluster-wide. */
export const warmProducts = once.wrap('cache:products:v1', warm);

async function main(): Promise<void> {
  try {
    const { value, role, waitedMs } = await once.runDetailed('cache:products:v1', warm);
    console.log(
      `${role}: ${value.products} products warmed (token ${value.fencingToken}) after ${Math.round(waitedMs)} ms`,
    );
    // Later calls in this process are answered from memory: no Redis round trip.
    await warmProducts();
  } catch (error) {
    if (error instanceof OnceFailedError) console.error(`warming failed everywhere: ${error.message}`);
    else if (error instanceof OnceTimeoutError)
      console.error('another replica is still warming; serving cold');
    else throw error;
  } finally {
    await once.close();
    redis.disconnect();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
