/**
 * `redis-once wait --key K [--timeout 10m] [--json]`: for a container that must not start before a
 * migration Job (or another pod) finished. It never runs anything; it exits 0 once the key is done —
 * here before, or elsewhere while it waits — with the codes `run` uses for a timeout (75), attempts
 * spent (70) and Redis unreachable (69). The done state is durable, so it also works after the Job
 * that ran the migration is gone.
 */
import type { OnceStatus } from '../index.js';
import { type OnceFlags, openOnce, resolveConnection } from './connection.js';
import { formatDuration } from './durations.js';
import { describeError } from './errors.js';
import { EXIT } from './exit-codes.js';
import { enableDebugLogs, printError } from './output.js';
import { detectMode, Progress } from './progress.js';
import { FORWARDED_SIGNALS } from './run.js';

export interface WaitFlags extends OnceFlags {
  key: string;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
}

/** Before this, a wait that is not over yet is not shown as waiting (no flicker). */
const WAITING_GRACE_MS = 300;

export async function waitCommand(flags: WaitFlags): Promise<number> {
  const { key } = flags;
  let secrets: readonly string[] = [];
  let redis: string | undefined;
  let once: ReturnType<typeof openOnce>;
  try {
    const connection = resolveConnection(flags);
    secrets = connection.secrets;
    redis = connection.display;
    if (flags.verbose) enableDebugLogs(secrets);
    once = openOnce(connection, flags);
  } catch (error) {
    return fail(error);
  }
  const progress = new Progress({
    mode: detectMode(flags.quiet === true),
    key,
    stream: process.stderr,
    lookup: () => once.status(key),
  });
  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => stop.abort(signal);
  for (const signal of FORWARDED_SIGNALS) process.on(signal, onSignal);
  const started = performance.now();
  const waitingTimer = setTimeout(() => progress.waiting(), WAITING_GRACE_MS);
  waitingTimer.unref();
  try {
    await once.wait(key, { signal: stop.signal });
    const status = await once.status(key);
    clearTimeout(waitingTimer);
    progress.succeed(doneLine(key, status, performance.now() - started));
    if (flags.json) printJson(status);
    return EXIT.OK;
  } catch (error) {
    clearTimeout(waitingTimer);
    progress.clear();
    // For a script: the state as it is now, when the wait ended without it being done.
    if (flags.json) {
      await once
        .status(key)
        .then(printJson)
        .catch(() => {});
    }
    return fail(error);
  } finally {
    clearTimeout(waitingTimer);
    await once.close();
    for (const signal of FORWARDED_SIGNALS) process.off(signal, onSignal);
  }

  function fail(error: unknown): number {
    const outcome = describeError(error, { key, redis });
    printError(outcome, error, { verbose: flags.verbose === true, secrets });
    return outcome.code;
  }
}

function printJson(status: OnceStatus): void {
  process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
}

function doneLine(key: string, status: OnceStatus, waitedMs: number): string {
  const by = status.owner ? ` by ${status.owner}` : '';
  const token = status.fencingToken !== undefined ? ` (fencing token ${status.fencingToken})` : '';
  return `"${key}" is done${by}${token}; waited ${formatDuration(waitedMs)}`;
}
