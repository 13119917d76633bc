/**
 * `redis-once run --key K -- CMD ARGS…`: the leader runs CMD, everyone else waits for it.
 *
 * One process moves through three states, and what a signal (SIGINT, SIGTERM, SIGHUP) does follows
 * from the state alone:
 *
 *   waiting ──fn called──▶ leading ──runDetailed settled──▶ finishing
 *      │                      │                               │
 *   stop waiting: exit     forward it to the command's        exit now (closing is bounded
 *   128+N, nothing         group (once); when the group       anyway)
 *   recorded               is gone, fn rejects: the attempt
 *                          is recorded failed and the lease
 *                          released, exit 128+N
 *
 * A lost lease while leading: SIGTERM to the group, SIGKILL after --kill-after, exit 76 once it is
 * gone. A command that exits 0 after a forwarded signal still counts as interrupted (see docs/cli.md).
 */
import { DEFAULTS, type OnceContext, type RunResult } from '../index.js';
import { Command, type CommandExit, KILL_AFTER_MS } from './command.js';
import { type OnceFlags, openOnce, resolveConnection, scrub } from './connection.js';
import { formatDuration } from './durations.js';
import {
  CommandFailedError,
  CommandSpawnError,
  describeError,
  InterruptedError,
  signalExitCode,
  UsageError,
} from './errors.js';
import { EXIT } from './exit-codes.js';
import { enableDebugLogs, printError } from './output.js';
import { detectMode, Progress } from './progress.js';

export interface RunFlags extends OnceFlags {
  key: string;
  killAfter?: number;
  verbose?: boolean;
  quiet?: boolean;
}

/** What fn records as the key's value: no command line (it may hold secrets). */
export interface RunValue {
  node: string;
  durationMs: number;
}

/** Before this, a caller that neither leads nor is done is not shown as waiting (no flicker). */
const WAITING_GRACE_MS = 300;
export const FORWARDED_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];

type State =
  | { kind: 'waiting' }
  /** fn runs here; `command` is unset for the moment before it is spawned. */
  | { kind: 'leading'; command: Command | undefined }
  | { kind: 'finishing'; command: Command | undefined };

export async function runCommand(argv: string[], flags: RunFlags): Promise<number> {
  const key = flags.key;
  let secrets: readonly string[] = [];
  let redis: string | undefined;
  if (argv.length === 0) {
    return fail(
      new UsageError('no command given; put it after --, e.g. redis-once run --key K -- npm run migrate'),
    );
  }
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
  const killAfterMs = flags.killAfter ?? KILL_AFTER_MS;
  const stopWaiting = new AbortController();
  const maxAttempts = flags.maxAttempts ?? DEFAULTS.maxAttempts;
  let state = { kind: 'waiting' } as State; // (`as`: it changes in callbacks, which narrowing does not see)
  /** The first signal received: the exit code, and why the attempt ends. */
  let interrupted: NodeJS.Signals | undefined;

  const onSignal = (signal: NodeJS.Signals) => {
    interrupted ??= signal;
    switch (state.kind) {
      case 'waiting':
        stopWaiting.abort(signal);
        return;
      case 'leading':
        if (state.command?.running) {
          progress.note(`received ${signal}; forwarding it to the command`);
          state.command.signal(signal);
        }
        return; // before the command starts, fn sees `interrupted` and does not start it
      case 'finishing':
        // Waiting for the command's group after a lost lease, or closing: leave now.
        if (!state.command?.running) process.exit(signalExitCode(signal));
        progress.note(`received ${signal}; forwarding it to the command`);
        state.command.signal(signal);
    }
  };
  for (const signal of FORWARDED_SIGNALS) process.on(signal, onSignal);

  const fn = async (ctx: OnceContext): Promise<RunValue> => {
    state = { kind: 'leading', command: undefined };
    progress.leading(leadingLine(ctx, argv[0]!, maxAttempts));
    if (interrupted) throw new InterruptedError(interrupted, 'the command was not started');
    const started = performance.now();
    const command = Command.start(argv, {
      env: commandEnv(ctx),
      killAfterMs,
      mask: (text) => scrub(text, secrets),
      onLeftovers: (how) =>
        progress.note(
          how === 'stopping'
            ? `the command exited; stopping what it left running in its process group (SIGTERM, then SIGKILL after ${formatDuration(killAfterMs)})`
            : `the command exited; waiting for the rest of its process group (SIGKILL ${formatDuration(killAfterMs)} after the signal)`,
        ),
    });
    state = { kind: 'leading', command };
    const onLost = () => {
      progress.note(
        `lost the lease of "${key}"; stopping the command (SIGTERM, then SIGKILL after ${formatDuration(killAfterMs)})`,
      );
      void command.terminate();
    };
    ctx.signal.addEventListener('abort', onLost, { once: true });
    let exit: CommandExit;
    try {
      exit = await command.exited;
    } finally {
      ctx.signal.removeEventListener('abort', onLost);
    }
    if (interrupted) throw new InterruptedError(interrupted, `the command ${describeExit(exit)}`);
    if (exit.spawnError) throw new CommandSpawnError(argv[0]!, exit.spawnError);
    if (exit.code !== 0) {
      const code = exit.signal ? signalExitCode(exit.signal) : (exit.code ?? EXIT.INTERNAL);
      throw new CommandFailedError(code, exit.signal, argv[0]!, command.stderrTail);
    }
    return { node: ctx.nodeId, durationMs: Math.round(performance.now() - started) };
  };

  const waitingTimer = setTimeout(() => {
    if (state.kind === 'waiting') progress.waiting();
  }, WAITING_GRACE_MS);
  waitingTimer.unref();
  try {
    const result = await once.runDetailed<RunValue>(key, fn, { signal: stopWaiting.signal });
    progress.succeed(successLine(key, result, progress));
    return EXIT.OK;
  } catch (error) {
    progress.clear();
    return fail(error);
  } finally {
    clearTimeout(waitingTimer);
    const command = state.kind === 'waiting' ? undefined : state.command;
    state = { kind: 'finishing', command };
    // After a lost lease the library answers at once; the command's group is being stopped: wait.
    if (command?.running) await command.exited;
    await once.close();
    for (const signal of FORWARDED_SIGNALS) process.off(signal, onSignal);
  }

  function fail(error: unknown): number {
    const outcome = describeError(error, { key, redis });
    printError(outcome, error, { verbose: flags.verbose === true, secrets });
    return outcome.code;
  }
}

function commandEnv(ctx: OnceContext): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ONCE_KEY: ctx.key,
    ONCE_FENCING_TOKEN: String(ctx.fencingToken),
    ONCE_ATTEMPT: String(ctx.attempt),
    ONCE_NODE_ID: ctx.nodeId,
  };
  if (ctx.previous) {
    env.ONCE_PREVIOUS_OUTCOME = ctx.previous.outcome;
    env.ONCE_PREVIOUS_FENCING_TOKEN = String(ctx.previous.fencingToken);
  }
  return env;
}

function leadingLine(ctx: OnceContext, program: string, maxAttempts: number): string {
  const attempt = `attempt ${ctx.attempt} of ${Math.max(maxAttempts, ctx.attempt)}, fencing token ${ctx.fencingToken}`;
  const previous = ctx.previous;
  if (!previous) return `leading "${ctx.key}" (${attempt}): running ${program}`;
  const by = previous.owner ? ` on ${previous.owner}` : '';
  return `taking over "${ctx.key}" after the previous attempt${by} ${previous.outcome} (${attempt}): running ${program}`;
}

function successLine(key: string, result: RunResult<RunValue>, progress: Progress): string {
  const token = `fencing token ${result.fencingToken}`;
  switch (result.role) {
    case 'leader':
      return `"${key}" is done: the command succeeded here in ${formatDuration(result.value.durationMs)} (${token})`;
    case 'follower': {
      const by = result.value?.node ?? progress.leader;
      return `"${key}" is done${by ? ` by ${by}` : ' elsewhere'} (${token}); waited ${formatDuration(result.waitedMs)}`;
    }
    case 'cached':
      return `"${key}" was already done (${token}); nothing to run`;
  }
}

function describeExit(exit: CommandExit): string {
  if (exit.spawnError) return 'could not start';
  return exit.signal ? `was stopped by ${exit.signal}` : `exited with code ${exit.code}`;
}
