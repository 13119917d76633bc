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
  /** Masks secrets (the Redis password) in the kept stderr, before it is cut to size. */
  mask?: (text: string) => string;
  /**
   * Told when the command exited but its group still runs: `stopping` (it gets SIGTERM now), or
   * `waiting` (it was signalled already: it gets the rest of --kill-after from then, then SIGKILL).
   */
  onLeftovers?: (how: 'stopping' | 'waiting') => void;
}

/** The default --kill-after. */
export const KILL_AFTER_MS = 10_000;

/** How much of the command's stderr the failure record keeps (the stored message's bound is 4 KiB). */
export const STDERR_TAIL_BYTES = 2048;

/**
 * Kept beyond the tail, so a secret that straddles the cut is still whole when it is masked (and the
 * masked text is cut afterwards): longer than any password.
 */
const MASK_MARGIN_BYTES = 1024;

/** How long the rest of the command's stderr may take to arrive once its group is gone. */
const STDERR_DRAIN_MS = 1_000;

export class Command {
  readonly exited: Promise<CommandExit>;
  private readonly child: ChildProcess;
  private readonly pgid: number | undefined;
  private done = false;
  private tail: Buffer = Buffer.alloc(0);
  private killTimer: NodeJS.Timeout | undefined;
  /** When the group was first signalled (forwarded, or terminate()): --kill-after counts from then. */
  private signalledAt: number | undefined;

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
    let passThrough = true;
    this.child.stderr?.on('data', (chunk: Buffer) => {
      if (passThrough) process.stderr.write(chunk);
      this.keep(chunk);
    });
    // Our stderr's reader went away (`… 2>&1 | head`): the command's own stderr closes too, as in a
    // plain pipeline (its next write gets SIGPIPE). Any other failure (a full disk): the command goes
    // on, its stderr read and dropped, as it would be if it wrote there itself.
    const onOwnStderrError = (error: NodeJS.ErrnoException) => {
      passThrough = false;
      if (error.code === 'EPIPE') this.child.stderr?.destroy();
    };
    process.stderr.on('error', onOwnStderrError);
    // 'close' comes once stderr is read to the end too.
    const closed = new Promise<void>((resolve) => this.child.once('close', () => resolve()));
    this.exited = new Promise<CommandExit>((resolve) => {
      let settled = false;
      const finish = async (exit: Omit<CommandExit, 'leftovers'>) => {
        if (settled) return;
        settled = true;
        let leftovers: CommandExit['leftovers'] = 'nothing-left';
        if (this.pgid !== undefined && groupRunning(this.pgid)) {
          const signalled = this.signalledAt !== undefined;
          this.options.onLeftovers?.(signalled ? 'waiting' : 'stopping');
          const grace = signalled
            ? Math.max(0, this.signalledAt! + this.options.killAfterMs - performance.now())
            : this.options.killAfterMs;
          leftovers = await stopGroup(this.pgid, grace, signalled);
        }
        // The rest of its stderr; a process that left the group may still hold the pipe: not for long.
        await Promise.race([closed, new Promise((r) => setTimeout(r, STDERR_DRAIN_MS).unref())]);
        this.child.stderr?.destroy();
        process.stderr.off('error', onOwnStderrError);
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

  /**
   * The end of what the command wrote to stderr (2 KB at most), masked, then trimmed; empty if
   * nothing. Cut at a line start when the kept bytes begin mid-line.
   */
  get stderrTail(): string {
    const masked = (this.options.mask ?? ((t: string) => t))(this.tail.toString('utf8'));
    const bytes = Buffer.from(masked, 'utf8');
    if (bytes.length <= STDERR_TAIL_BYTES) return masked.trim();
    // U+FFFD for a character the cut split; a line start if there is one.
    let text = bytes.subarray(bytes.length - STDERR_TAIL_BYTES).toString('utf8');
    const newline = text.indexOf('\n');
    if (newline !== -1 && newline < text.length - 1) text = text.slice(newline + 1);
    return text.replace(/^\uFFFD+/, '').trim();
  }

  /** Sends `signal` to the command's whole group, if it still runs. */
  signal(signal: NodeJS.Signals): void {
    if (this.done || this.pgid === undefined) return;
    if (signal !== 'SIGKILL') this.signalledAt ??= performance.now();
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
    const keep = STDERR_TAIL_BYTES + MASK_MARGIN_BYTES;
    this.tail = joined.length > keep ? joined.subarray(joined.length - keep) : joined;
  }
}
