/**
 * What `run` tells the person (or the log) watching it, always on stderr: stdout belongs to the
 * command.
 *
 * - `spinner` (stderr and stdout are a terminal): a nanospinner line with the elapsed time and the
 *   leader's node id while waiting, replaced by one final line.
 * - `plain` (CI logs, `kubectl logs`): one line when waiting starts, one every `heartbeatMs`, one at
 *   the end. No control characters.
 * - `quiet`: nothing but errors.
 *
 * The leader's id comes from `status()`, read when waiting starts and then at most every
 * `refreshMs` (one Redis read, never overlapping); the wait itself is the library's pub/sub.
 */
import { createSpinner, type Spinner } from 'nanospinner';
import type { OnceStatus } from '../index.js';
import { formatDuration } from './durations.js';

export type ProgressMode = 'spinner' | 'plain' | 'quiet';

export interface ProgressOptions {
  mode: ProgressMode;
  key: string;
  stream: NodeJS.WritableStream;
  /** Reads the key's state, for the leader's id. Errors are ignored (shown as an unknown leader). */
  lookup: () => Promise<OnceStatus>;
  /** Plain mode: a line every this often while waiting. */
  heartbeatMs?: number;
  /** Spinner mode: re-read the leader's id at most this often. */
  refreshMs?: number;
  now?: () => number;
}

const PREFIX = 'redis-once:';

/** The mode for this process: a spinner only when a person is watching a real terminal. */
export function detectMode(
  quiet: boolean,
  env: NodeJS.ProcessEnv = process.env,
  streams: { stdout: Partial<NodeJS.WriteStream>; stderr: Partial<NodeJS.WriteStream> } = process,
): ProgressMode {
  if (quiet) return 'quiet';
  // nanospinner draws frames only when stdout is a terminal too; elsewhere it would print a line per
  // frame. A pseudo-terminal without a size (columns 0: some `docker run -t`, `script`) would make it
  // compute an infinite line count, so it needs a width.
  const terminal =
    streams.stderr.isTTY === true && streams.stdout.isTTY === true && (streams.stderr.columns ?? 0) > 0;
  return terminal && env.TERM !== 'dumb' && !('CI' in env) ? 'spinner' : 'plain';
}

export class Progress {
  private readonly started: number;
  private readonly now: () => number;
  private readonly heartbeatMs: number;
  private readonly refreshMs: number;
  private waitingSince: number | undefined;
  private owner: string | undefined;
  private detail = '';
  private lastLookup = Number.NEGATIVE_INFINITY;
  private lookingUp = false;
  private spinner: Spinner | undefined;
  private timers: NodeJS.Timeout[] = [];
  private ended = false;

  constructor(private readonly options: ProgressOptions) {
    this.now = options.now ?? (() => performance.now());
    this.started = this.now();
    this.heartbeatMs = options.heartbeatMs ?? 10_000;
    this.refreshMs = options.refreshMs ?? 5_000;
  }

  /** This process waits for another node's run: start the spinner, or print the first line. */
  waiting(): void {
    if (this.ended || this.waitingSince !== undefined || this.options.mode === 'quiet') return;
    this.waitingSince = this.now();
    if (this.options.mode === 'spinner') {
      // Driven by our own unref'd timer: nanospinner's start() would keep the process alive and
      // install SIGINT/SIGTERM handlers that exit at once, skipping our clean-up.
      this.spinner = createSpinner(this.waitingText(), { stream: this.options.stream as NodeJS.WriteStream });
      this.spinner.spin();
      this.every(80, () => this.spinner?.update(this.waitingText()).spin());
      this.every(this.refreshMs, () => this.refresh());
      void this.refresh();
    } else {
      void this.refresh().then(() => {
        if (this.stillWaiting()) this.line(`waiting for "${this.options.key}"${this.leaderText()}`);
      });
      this.every(this.heartbeatMs, () => {
        void this.refresh().then(() => {
          if (this.stillWaiting())
            this.line(`still waiting for "${this.options.key}"${this.leaderText()}, ${this.elapsed()}`);
        });
      });
    }
  }

  /** This process leads: it runs the command now. */
  leading(line: string): void {
    this.clearWaiting();
    this.line(line);
  }

  /** Something worth a line, such as a lost lease. */
  note(line: string): void {
    if (this.spinner) this.spinner.clear();
    this.line(line);
  }

  /** The final line on success. */
  succeed(line: string): void {
    this.end();
    if (this.options.mode === 'quiet') return;
    if (this.spinner) this.spinner.success({ text: line });
    else this.line(line);
    this.spinner = undefined;
  }

  /** Ends the display without a line of its own (an error line follows). */
  end(): void {
    this.ended = true;
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
  }

  /** Ends the display and removes the spinner line, so an error can take its place. */
  clear(): void {
    this.end();
    this.clearWaiting();
  }

  /** Elapsed since the CLI started, e.g. `12 s`. */
  elapsed(): string {
    return formatDuration(this.now() - this.started);
  }

  /** The leader last read from Redis, if any. */
  get leader(): string | undefined {
    return this.owner;
  }

  /** False once this process leads or is finished: a status read that returns late prints nothing. */
  private stillWaiting(): boolean {
    return !this.ended && this.waitingSince !== undefined;
  }

  private clearWaiting(): void {
    if (this.spinner) {
      this.spinner.clear();
      // Restores the cursor that rendering hid.
      this.options.stream.write('\x1b[?25h');
      this.spinner = undefined;
    }
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    this.waitingSince = undefined;
  }

  private waitingText(): string {
    // Whole seconds: the line is redrawn every 80 ms, and changing milliseconds would only flicker.
    const seconds = Math.floor((this.now() - this.started) / 1_000);
    return `waiting for "${this.options.key}"${this.leaderText()} ${formatDuration(seconds * 1_000).replace(/^0 ms$/, '0 s')}`;
  }

  private leaderText(): string {
    return this.owner
      ? ` (leader ${this.owner}${this.detail})`
      : this.detail
        ? ` (${this.detail.slice(2)})`
        : '';
  }

  /** One status read, unless one is in flight or the last was less than refreshMs ago. */
  private async refresh(): Promise<void> {
    if (this.lookingUp || this.now() - this.lastLookup < Math.min(this.refreshMs, this.heartbeatMs) / 2)
      return;
    this.lookingUp = true;
    this.lastLookup = this.now();
    try {
      const status = await this.options.lookup();
      this.owner = status.state === 'running' ? status.owner : undefined;
      this.detail =
        status.state === 'running'
          ? `, attempt ${status.attempts}`
          : status.state === 'failed'
            ? ', waiting for a takeover'
            : '';
    } catch {
      // Unknown for now; the wait itself reports Redis trouble.
    } finally {
      this.lookingUp = false;
    }
  }

  private every(ms: number, tick: () => void): void {
    const timer = setInterval(tick, ms);
    timer.unref();
    this.timers.push(timer);
  }

  private line(text: string): void {
    if (this.options.mode === 'quiet') return;
    this.options.stream.write(`${PREFIX} ${text}\n`);
  }
}
