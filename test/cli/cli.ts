/**
 * Real `redis-once` processes for the CLI tests: the TypeScript entry point under tsx, exactly as
 * test workers run, with stdout and stderr captured and awaitable.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const REGISTER_LUA = fileURLToPath(new URL('../../scripts/register-lua.mjs', import.meta.url));

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface StartOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
}

export class Cli {
  stdout = '';
  stderr = '';
  readonly exited: Promise<Exit>;
  readonly startedAt = performance.now();
  private readonly child: ChildProcess;
  private readonly listeners = new Set<() => void>();

  private constructor(
    readonly args: readonly string[],
    options: StartOptions,
  ) {
    // The tests name their Redis with --redis; a REDIS_URL of the developer's must not leak in, and
    // CI would switch the progress output mode.
    const env: NodeJS.ProcessEnv = { ...process.env, REDIS_URL: undefined, CI: undefined, DEBUG: undefined };
    for (const [name, value] of Object.entries(options.env ?? {})) env[name] = value;
    for (const name of Object.keys(env)) if (env[name] === undefined) delete env[name];
    this.child = spawn(process.execPath, ['--import', 'tsx', '--import', REGISTER_LUA, MAIN, ...args], {
      cwd: options.cwd ?? ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group, so kill() reaches everything it started.
      detached: true,
    });
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stdout += chunk;
      this.wake();
    });
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
      this.wake();
    });
    // 'close', not 'exit': every byte of output has arrived by then.
    this.exited = once(this.child, 'close').then(([code, signal]) => {
      this.wake();
      return { code: code as number | null, signal: signal as NodeJS.Signals | null };
    });
    live.add(this);
    void this.exited.finally(() => live.delete(this));
  }

  static start(args: readonly string[], options: StartOptions = {}): Cli {
    return new Cli(args, options);
  }

  get pid(): number {
    return this.child.pid!;
  }

  get output(): string {
    return this.stdout + this.stderr;
  }

  /** Resolves once `pattern` shows up on `stream`, within `timeoutMs`; rejects if the process exits first. */
  waitFor(stream: 'stdout' | 'stderr', pattern: RegExp, timeoutMs = 15_000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      let exited = false;
      const check = () => {
        const match = this[stream].match(pattern);
        if (match) {
          finish();
          resolve(match);
        } else if (exited) {
          finish();
          reject(new Error(`${this.describe()} exited before ${stream} matched ${pattern}`));
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`${this.describe()}: ${stream} did not match ${pattern} within ${timeoutMs} ms`));
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        this.listeners.delete(check);
      };
      void this.exited.then(() => {
        exited = true;
        check();
      });
      this.listeners.add(check);
      check();
    });
  }

  /** The exit, within `timeoutMs`. */
  async exit(timeoutMs = 20_000): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${this.describe()} still running after ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /**
   * Ends the CLI as an orchestrator would: SIGTERM (a leader stops its command's process group), and
   * SIGKILL to the CLI's own group if it is still there after a few seconds.
   */
  async kill(): Promise<void> {
    const signal = (name: NodeJS.Signals) => {
      try {
        process.kill(-this.pid, name);
      } catch {
        // The group is gone already.
      }
    };
    signal('SIGTERM');
    const timer = setTimeout(() => signal('SIGKILL'), 3_000);
    await this.exited;
    clearTimeout(timer);
  }

  describe(): string {
    return `redis-once ${this.args.join(' ')}\n--- stdout:\n${this.stdout}--- stderr:\n${this.stderr}---`;
  }

  private wake(): void {
    for (const listener of [...this.listeners]) listener();
  }
}

const live = new Set<Cli>();

/** Kills every CLI process still running, with the commands they started (afterEach). */
export async function killAllClis(): Promise<void> {
  await Promise.all([...live].map((cli) => cli.kill()));
}

/** Runs the CLI to completion. */
export async function runCli(
  args: readonly string[],
  options: StartOptions = {},
): Promise<Cli & { result: Exit }> {
  const cli = Cli.start(args, options);
  const result = await cli.exit();
  return Object.assign(cli, { result });
}

/** True while `pid` runs (a zombie, exited but not reaped, does not): Linux's /proc. */
export function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}
