/**
 * The command `run` executes on the leader, supervised as a process group of its own:
 *
 * - Signals go to the whole group, once: the terminal's Ctrl-C reaches only the CLI (the command is not
 *   in the terminal's foreground group), which forwards it.
 * - `exited` resolves once the command has exited *and* nothing of its group still runs: whatever it
 *   left behind (a background job, a grandchild that ignored the signal) is stopped with SIGTERM, then
 *   SIGKILL after `killAfterMs`. So no process of an attempt outlives it.
 * - Its stderr passes through and its last few KB are kept, for the failure record.
 * - In a terminal its stdin is /dev/null: a background group that reads the terminal would be stopped
 *   (SIGTTIN) and hang the attempt. Piped stdin is passed on.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { groupRunning, signalGroup, stopGroup } from './process-group.js';

export interface CommandExit {
  /** Exit code, or null when killed by a signal or never started. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the command could not be started (ENOENT, EACCES). */
  spawnError?: NodeJS.ErrnoException;
  /** What was left of its group when it exited, and how it was stopped. */
  leftovers: 'nothing-left' | 'terminated' | 'killed';
}

export interface CommandOptions {
  env: NodeJS.ProcessEnv;
  /** After SIGTERM, how long the group gets before SIGKILL (--kill-after). */
  killAfterMs: number;
  /** Told when the command exited but its group still runs and is being stopped. */
  onLeftovers?: () => void;
}

/** The default --kill-after. */
export const KILL_AFTER_MS = 10_000;

/** How much of the command's stderr the failure record keeps (the stored message's bound is 4 KiB). */
export const STDERR_TAIL_BYTES = 2048;

/** How long the rest of the command's stderr may take to arrive once its group is gone. */
const STDERR_DRAIN_MS = 1_000;

export class Command {
  readonly exited: Promise<CommandExit>;
  private readonly child: ChildProcess;
  private readonly pgid: number | undefined;
  private done = false;
  private tail: Buffer = Buffer.alloc(0);
  private killTimer: NodeJS.Timeout | undefined;

  private constructor(
    argv: readonly string[],
    private readonly options: CommandOptions,
  ) {
    this.child = spawn(argv[0]!, argv.slice(1), {
      stdio: [process.stdin.isTTY ? 'ignore' : 'inherit', 'inherit', 'pipe'],
      env: options.env,
      detached: true, // the leader of a new process group (setsid would also drop the terminal)
    });
    this.pgid = this.child.pid;
    this.child.stderr?.on('data', (chunk: Buffer) => {
      process.stderr.write(chunk);
      this.keep(chunk);
    });
    // 'close' comes once stderr is read to the end too.
    const closed = new Promise<void>((resolve) => this.child.once('close', () => resolve()));
    this.exited = new Promise<CommandExit>((resolve) => {
      let settled = false;
      const finish = async (exit: Omit<CommandExit, 'leftovers'>) => {
        if (settled) return;
        settled = true;
        let leftovers: CommandExit['leftovers'] = 'nothing-left';
        if (this.pgid !== undefined && groupRunning(this.pgid)) {
          this.options.onLeftovers?.();
          leftovers = await stopGroup(this.pgid, this.options.killAfterMs);
        }
        // The rest of its stderr; a process that left the group may still hold the pipe: not for long.
        await Promise.race([closed, new Promise((r) => setTimeout(r, STDERR_DRAIN_MS).unref())]);
        this.child.stderr?.destroy();
        clearTimeout(this.killTimer);
        this.done = true;
        resolve({ ...exit, leftovers });
      };
      // A command that cannot start emits 'error' and may never emit 'exit'.
      this.child.once('error', (error: NodeJS.ErrnoException) =>
        finish({ code: null, signal: null, spawnError: error }),
      );
      this.child.once('exit', (code, signal) => finish({ code, signal }));
    });
  }

  static start(argv: readonly string[], options: CommandOptions): Command {
    return new Command(argv, options);
  }

  /** True until the command has exited and its group is gone. */
  get running(): boolean {
    return !this.done;
  }

  /** The end of what the command wrote to stderr (a few KB), trimmed; empty if nothing. */
  get stderrTail(): string {
    let text = this.tail.toString('utf8');
    // Cut at a line start if the kept bytes began mid-line (or mid-character).
    if (this.tail.length >= STDERR_TAIL_BYTES) {
      const newline = text.indexOf('\n');
      if (newline !== -1 && newline < text.length - 1) text = text.slice(newline + 1);
    }
    return text.trim();
  }

  /** Sends `signal` to the command's whole group, if it still runs. */
  signal(signal: NodeJS.Signals): void {
    if (this.done || this.pgid === undefined) return;
    signalGroup(this.pgid, signal);
  }

  /** SIGTERM to the group now, SIGKILL after --kill-after if it still runs; resolves once it is gone. */
  async terminate(): Promise<CommandExit> {
    this.signal('SIGTERM');
    clearTimeout(this.killTimer);
    this.killTimer = setTimeout(() => this.signal('SIGKILL'), this.options.killAfterMs);
    return this.exited;
  }

  private keep(chunk: Buffer): void {
    const joined = Buffer.concat([this.tail, chunk]);
    this.tail =
      joined.length > STDERR_TAIL_BYTES ? joined.subarray(joined.length - STDERR_TAIL_BYTES) : joined;
  }
}
