/**
 * The command `run` executes on the leader: spawned with stdio inherited, signals forwarded, and
 * stopped (SIGTERM, then SIGKILL after a grace period) when the lease is lost.
 */
import { type ChildProcess, spawn } from 'node:child_process';

export interface CommandExit {
  /** Exit code, or null when killed by a signal or never started. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the command could not be started (ENOENT, EACCES). */
  spawnError?: NodeJS.ErrnoException;
}

/** How long a command gets after SIGTERM before SIGKILL, when the lease is lost. */
export const KILL_GRACE_MS = 10_000;

export class Command {
  readonly exited: Promise<CommandExit>;
  private readonly child: ChildProcess;
  private done = false;

  private constructor(argv: readonly string[], env: NodeJS.ProcessEnv) {
    this.child = spawn(argv[0]!, argv.slice(1), { stdio: 'inherit', env });
    this.exited = new Promise<CommandExit>((resolve) => {
      const finish = (exit: CommandExit) => {
        if (this.done) return;
        this.done = true;
        resolve(exit);
      };
      // A command that cannot start emits 'error' and may never emit 'exit'.
      this.child.once('error', (error: NodeJS.ErrnoException) =>
        finish({ code: null, signal: null, spawnError: error }),
      );
      this.child.once('exit', (code, signal) => finish({ code, signal }));
    });
  }

  static start(argv: readonly string[], env: NodeJS.ProcessEnv): Command {
    return new Command(argv, env);
  }

  get running(): boolean {
    return !this.done;
  }

  /** Sends `signal` to the command, if it still runs. */
  signal(signal: NodeJS.Signals): void {
    if (this.done) return;
    try {
      this.child.kill(signal);
    } catch {
      // Already gone.
    }
  }

  /** SIGTERM now, SIGKILL after `graceMs` if it still runs; resolves once it has exited. */
  async terminate(graceMs = KILL_GRACE_MS): Promise<CommandExit> {
    this.signal('SIGTERM');
    const force = setTimeout(() => this.signal('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(force);
    }
  }
}
