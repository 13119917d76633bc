/**
 * The command's process group: `run` spawns the command as the leader of a group of its own and
 * signals the whole group, so a grandchild (the real work under `sh -c`, `npm run`, `npx`) is stopped
 * with it and never outlives the attempt.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** How often a group that was told to stop is looked at again. */
const POLL_MS = 25;
/** After SIGKILL, how long we wait for the kernel to finish the group before going on. */
const KILLED_WAIT_MS = 2_000;

/** Sends `signal` to every process of group `pgid`; false when the group is gone. */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (error) {
    // EPERM: a member we may not signal (it changed user); it exists.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * True while a process of group `pgid` still runs. A zombie (exited, not yet reaped: the CLI may be
 * PID 1 in a container, where orphans become ours and nobody reaps them) does no work and does not
 * count; on Linux /proc tells them apart, elsewhere any member counts.
 */
export function groupRunning(pgid: number): boolean {
  if (!signalGroup(pgid, 0)) return false;
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return true;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // pid (comm) state ppid pgrp …: comm may hold spaces and parentheses, so read after the last ')'.
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(pgrp) === pgid && state !== 'Z' && state !== 'X') return true;
  }
  return false;
}

/** Resolves once no process of the group runs, or after `ms` (false then). */
export function groupGone(pgid: number, ms: number): Promise<boolean> {
  const deadline = performance.now() + ms;
  return new Promise((resolve) => {
    const look = () => {
      if (!groupRunning(pgid)) return resolve(true);
      if (performance.now() >= deadline) return resolve(false);
      setTimeout(look, POLL_MS);
    };
    look();
  });
}

/**
 * Stops the group: SIGTERM (unless it was already told to stop: a signal reaches it once), then
 * SIGKILL if it still runs after `killAfterMs`. Resolves once it is gone, with how it ended: nothing
 * was left, it stopped by itself or on SIGTERM, or it had to be killed.
 */
export async function stopGroup(
  pgid: number,
  killAfterMs: number,
  alreadySignalled = false,
): Promise<'nothing-left' | 'terminated' | 'killed'> {
  if (!groupRunning(pgid)) return 'nothing-left';
  if (!alreadySignalled) signalGroup(pgid, 'SIGTERM');
  if (await groupGone(pgid, killAfterMs)) return 'terminated';
  signalGroup(pgid, 'SIGKILL');
  // SIGKILL cannot be caught; what is left after this is a process in uninterruptible sleep.
  await groupGone(pgid, KILLED_WAIT_MS);
  return 'killed';
}
