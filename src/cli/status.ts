/** `redis-once status --key K [--json]`: the key's state, for people or (with --json) for scripts. */
import type { OnceStatus } from '../index.js';
import { type ConnectionFlags, openOnce, resolveConnection } from './connection.js';
import { formatDuration } from './durations.js';
import { describeError } from './errors.js';
import { EXIT } from './exit-codes.js';
import { enableDebugLogs, printError } from './output.js';

export interface StatusFlags extends ConnectionFlags {
  key: string;
  json?: boolean;
  verbose?: boolean;
}

export async function statusCommand(flags: StatusFlags): Promise<number> {
  let secrets: readonly string[] = [];
  let redis: string | undefined;
  let once: ReturnType<typeof openOnce> | undefined;
  try {
    const connection = resolveConnection(flags);
    secrets = connection.secrets;
    redis = connection.display;
    if (flags.verbose) enableDebugLogs(secrets);
    once = openOnce(connection, flags);
    const status = await once.status(flags.key);
    process.stdout.write(
      flags.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(flags.key, status),
    );
    return EXIT.OK;
  } catch (error) {
    const outcome = describeError(error, { key: flags.key, redis });
    printError(outcome, error, { verbose: flags.verbose === true, secrets });
    return outcome.code;
  } finally {
    await once?.close();
  }
}

const SUMMARY: Record<OnceStatus['state'], string> = {
  idle: 'has not run (or was reset)',
  running: 'is running',
  done: 'is done',
  failed: 'failed (the next run takes over while attempts remain)',
};

/** A few aligned lines; absent fields are left out. */
export function formatStatus(key: string, status: OnceStatus, now = Date.now()): string {
  const rows: Array<[string, string]> = [['state', status.state]];
  if (status.owner !== undefined) rows.push(['owner', status.owner]);
  if (status.fencingToken !== undefined) rows.push(['fencing token', String(status.fencingToken)]);
  rows.push(['attempts', String(status.attempts)]);
  if (status.startedAt !== undefined) rows.push(['started', when(status.startedAt, now)]);
  if (status.finishedAt !== undefined) {
    const took =
      status.startedAt !== undefined ? `; took ${formatDuration(status.finishedAt - status.startedAt)}` : '';
    rows.push(['finished', when(status.finishedAt, now, took)]);
  }
  if (status.state === 'done') rows.push(['value', JSON.stringify(status.value) ?? 'undefined']);
  if (status.error) rows.push(['last error', `${status.error.name}: ${status.error.message}`]);
  const width = Math.max(...rows.map(([label]) => label.length));
  return `"${key}" ${SUMMARY[status.state]}\n${rows.map(([label, value]) => `  ${label.padEnd(width)}  ${value}`).join('\n')}\n`;
}

function when(epochMs: number, now: number, extra = ''): string {
  const ago = now - epochMs;
  return `${new Date(epochMs).toISOString()} (${ago >= 0 ? `${formatDuration(ago)} ago` : 'just now'}${extra})`;
}
