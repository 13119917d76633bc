/** `redis-once status --key K [--json]`: the key's state, for people or (with --json) for scripts. */
import type { OnceStatus } from '../index.js';
import { type AdminFlags, adminCommand } from './admin-command.js';
import { formatDuration } from './durations.js';
import { EXIT } from './exit-codes.js';

export interface StatusFlags extends AdminFlags {
  json?: boolean;
}

export function statusCommand(flags: StatusFlags): Promise<number> {
  return adminCommand(flags, async (once) => {
    const status = await once.status(flags.key);
    process.stdout.write(
      flags.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(flags.key, status),
    );
    return EXIT.OK;
  });
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
