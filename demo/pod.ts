/**
 * One demo "pod": a process that calls `once.runDetailed('migrate:v42', migrate)` when the demo says
 * go, like every replica of a service would on start-up, and reports how it got the value.
 *
 * The migration writes to a JSON file standing in for the database. It stores the fencing token beside
 * what it writes and refuses to write under a lower token than the one already there: the recipe that
 * makes a takeover safe even if a paused leader wakes up later. On a takeover (`ctx.previous`), it
 * resumes from the steps the previous attempt recorded.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { createOnce, type OnceContext } from '../src/index.js';
import { type PodConfig, type PodMessage, STEPS } from './shared.js';

interface Database {
  fencingToken: number;
  applied: Record<string, number>;
}

const config = JSON.parse(process.argv[2]!) as PodConfig;
const send = (message: PodMessage) => process.send?.(message);
const log = (line: string) => process.stdout.write(`  ${config.nodeId.padEnd(6)} │ ${line}\n`);

function readDb(): Database {
  return existsSync(config.dbFile)
    ? (JSON.parse(readFileSync(config.dbFile, 'utf8')) as Database)
    : { fencingToken: 0, applied: {} };
}

/** Records one applied step, unless a newer attempt (a higher token) has written since. */
function recordStep(step: string, token: number): void {
  const db = readDb();
  if (db.fencingToken > token) {
    throw new Error(`fencing token ${token} is stale: the database has seen ${db.fencingToken}`);
  }
  db.fencingToken = token;
  db.applied[step] = token;
  writeFileSync(`${config.dbFile}.tmp`, JSON.stringify(db));
  renameSync(`${config.dbFile}.tmp`, config.dbFile);
}

async function migrate(ctx: OnceContext): Promise<{ schemaVersion: number; steps: number }> {
  if (ctx.previous) {
    const { owner, fencingToken, outcome } = ctx.previous;
    log(`taking over: the previous attempt (${owner ?? 'another pod'}, token ${fencingToken}) ${outcome}`);
  }
  log(`leading: attempt ${ctx.attempt}, fencing token ${ctx.fencingToken}`);
  send({ type: 'leading', fencingToken: ctx.fencingToken, attempt: ctx.attempt });
  for (const [index, step] of STEPS.entries()) {
    const done = readDb().applied[step];
    if (done !== undefined) {
      log(`  ✓ ${step} (already applied under token ${done}, skipped)`);
      continue;
    }
    log(`  … ${step}`);
    await sleep(config.stepMs, undefined, { signal: ctx.signal });
    recordStep(step, ctx.fencingToken);
    log(`  ✓ ${step}`);
    send({ type: 'step', step: index + 1, of: STEPS.length });
  }
  return { schemaVersion: 42, steps: STEPS.length };
}

const once = createOnce({
  redis: config.url,
  namespace: config.namespace,
  nodeId: config.nodeId,
  leaseMs: config.leaseMs,
});

process.once('message', async () => {
  log(`start-up: once.run("${config.key}")`);
  try {
    const result = await once.runDetailed(config.key, migrate);
    send({
      type: 'result',
      role: result.role,
      waitedMs: result.waitedMs,
      fencingToken: result.fencingToken,
      attempt: result.attempt,
    });
    log(`ready to serve (${result.role}, schema v${result.value.schemaVersion})`);
  } catch (error) {
    const { name, message } = error as Error;
    send({ type: 'error', name, message });
    log(`failed: ${name}: ${message}`);
    process.exitCode = 1;
  } finally {
    await once.close();
    process.disconnect?.();
  }
});
send({ type: 'ready' });
