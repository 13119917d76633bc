/**
 * `redis-once run --key K -- CMD ARGS…`: the leader runs CMD, everyone else waits for it.
 *
 * Signals (SIGINT, SIGTERM, SIGHUP): on the leader they are forwarded to CMD; once CMD has exited,
 * fn rejects whatever CMD's exit code, so the library records the attempt as failed and releases the
 * lease in one script, and a follower takes over at once. A follower just stops waiting. Either way
 * the exit code is 128 + the signal's number.
 */
import { DEFAULTS, type OnceContext, type RunResult } from '../index.js';
import { Command, type CommandExit, KILL_GRACE_MS } from './command.js';
import { type OnceFlags, openOnce, resolveConnection } from './connection.js';
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
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

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
  const stopWaiting = new AbortController();
  const maxAttempts = flags.maxAttempts ?? DEFAULTS.maxAttempts;
  let command: Command | undefined;
  let leading = false;
  let interrupted: NodeJS.Signals | undefined;
  let finishing = false;

  const onSignal = (signal: NodeJS.Signals) => {
    if (finishing && !command?.running) {
      // A signal while closing (bounded anyway): leave now.
      process.exit(signalExitCode(signal));
    }
    interrupted ??= signal;
    if (command?.running) {
      progress.note(`received ${signal}; forwarding it to the command`);
      command.signal(signal);
    } else if (!leading) {
      stopWaiting.abort(signal);
    }
  };
  for (const signal of SIGNALS) process.on(signal, onSignal);

  const fn = async (ctx: OnceContext): Promise<RunValue> => {
    leading = true;
    progress.leading(leadingLine(ctx, argv[0]!, maxAttempts));
    if (interrupted) throw new InterruptedError(interrupted, 'the command was not started');
    const started = performance.now();
    const current = Command.start(argv, commandEnv(ctx));
    command = current;
    const onLost = () => {
      progress.note(
        `lost the lease of "${key}"; stopping the command (SIGTERM, then SIGKILL after ${formatDuration(KILL_GRACE_MS)})`,
      );
      void current.terminate(KILL_GRACE_MS);
    };
    ctx.signal.addEventListener('abort', onLost, { once: true });
    let exit: CommandExit;
    try {
      exit = await current.exited;
    } finally {
      ctx.signal.removeEventListener('abort', onLost);
    }
    if (interrupted) throw new InterruptedError(interrupted, `the command ${describeExit(exit)}`);
    if (exit.spawnError) throw new CommandSpawnError(argv[0]!, exit.spawnError);
    if (exit.code !== 0) {
      const code = exit.signal ? signalExitCode(exit.signal) : (exit.code ?? EXIT.INTERNAL);
      throw new CommandFailedError(code, exit.signal, argv[0]!);
    }
    return { node: ctx.nodeId, durationMs: Math.round(performance.now() - started) };
  };

  const waitingTimer = setTimeout(() => {
    if (!leading) progress.waiting();
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
    finishing = true;
    // After a lost lease the library answers at once; the command is being stopped: wait for it.
    if (command?.running) await command.exited;
    await once.close();
    for (const signal of SIGNALS) process.off(signal, onSignal);
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
