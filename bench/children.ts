import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';

/**
 * Every child process the bench starts (redis-server, workers), so that none outlives it: on normal
 * exit, on an uncaught error, and on Ctrl-C. Workers also exit by themselves when their IPC channel
 * closes (see worker.ts), which covers a parent killed with SIGKILL; redis-server cannot, so its
 * scratch directory is removed here too.
 */
const children = new Map<ChildProcess, string | undefined>();
let installed = false;

export function track(child: ChildProcess, scratchDir?: string): void {
  install();
  children.set(child, scratchDir);
  child.once('exit', () => {
    children.delete(child);
    if (scratchDir) rmSync(scratchDir, { recursive: true, force: true });
  });
}

/** SIGKILL: nothing a child holds (no persistence, no files we keep) needs a graceful stop. */
export function killAll(): void {
  for (const [child, dir] of children) {
    child.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
  children.clear();
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      console.error(`\nbench: ${signal}; stopping every child process`);
      killAll();
      process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1));
    });
  }
}
