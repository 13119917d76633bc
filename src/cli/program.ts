/** The command line: commander does the parsing, `--help` on every command lists the exit codes. */
import { Command, InvalidArgumentError, Option } from 'commander';
import pkg from '../../package.json' with { type: 'json' };
import { DEFAULTS } from '../index.js';
import { KILL_AFTER_MS } from './command.js';
import { DEFAULT_REDIS_URL } from './connection.js';
import { type DoctorFlags, doctorCommand } from './doctor.js';
import { parseDuration } from './durations.js';
import { exitCodeHelp } from './exit-codes.js';
import { type ListFlags, listCommand } from './list.js';
import { type ResetFlags, resetCommand } from './reset.js';
import { type RunFlags, runCommand } from './run.js';
import { type StatusFlags, statusCommand } from './status.js';
import { type WaitFlags, waitCommand } from './wait.js';

/** The exit code the action chose; commander itself only reports usage errors. */
export interface Result {
  code: number;
}

const ENVIRONMENT = `Environment:
  REDIS_URL     default for --redis
  DEBUG         e.g. redis-once:* for the library's debug logs (--verbose turns them on)
`;

const RUN_ENV = `The command's environment gets:
  ONCE_KEY, ONCE_FENCING_TOKEN, ONCE_ATTEMPT, ONCE_NODE_ID, and on a takeover
  ONCE_PREVIOUS_OUTCOME (crashed | failed | lease-lost) and ONCE_PREVIOUS_FENCING_TOKEN.

The command runs in a process group of its own. SIGINT/SIGTERM/SIGHUP on the leader are forwarded to
the group, once; once it is gone the attempt is recorded as failed (even if the command exited 0) and
the lease released, so another node takes over at once. A waiting node just stops waiting. On a lost
lease the group gets SIGTERM, then SIGKILL after --kill-after. Durations: 500ms, 30s, 10m, 1h, or
plain milliseconds.
`;

export function buildProgram(result: Result): Command {
  const program = new Command('redis-once')
    .description('Run a command exactly once across a cluster of processes, coordinated through Redis.')
    .version(pkg.version, '-V, --version')
    .enablePositionalOptions()
    .showHelpAfterError('(add --help for usage)')
    .exitOverride()
    .addHelpText('after', `\n${exitCodeHelp()}\n${ENVIRONMENT}`);

  const run = program
    .command('run')
    .summary('run a command once across the cluster; every other node waits until it is done')
    .description(
      'Run COMMAND on exactly one node for --key; every other node waits for it. Exits 0 once the key ' +
        "is done (here, elsewhere, or before), with the command's own code when it ran here and failed.",
    )
    .usage('--key KEY [options] -- COMMAND [ARGS...]')
    .argument('<command...>', 'the command and its arguments (after --)')
    .passThroughOptions()
    .requiredOption('-k, --key <key>', 'the once-key, e.g. migrate:$(git rev-parse --short HEAD)');
  withConnection(run)
    .addOption(
      new Option(
        '--lease <duration>',
        'lease TTL, renewed while the command runs; a crashed leader is taken over after it',
      )
        .argParser(durationFlag)
        .default(DEFAULTS.leaseMs, '30s'),
    )
    .addOption(
      new Option('--timeout <duration>', 'how long to wait for another node before giving up (exit 75)')
        .argParser(durationFlag)
        .default(DEFAULTS.waitTimeoutMs, '10m'),
    )
    .addOption(
      new Option(
        '--max-attempts <n>',
        'attempts cluster-wide (crashes count) before every node fails (exit 70)',
      )
        .argParser(positiveInteger)
        .default(DEFAULTS.maxAttempts),
    )
    .addOption(
      new Option(
        '--done-ttl <duration>',
        'forget the done state after this long (default: keep until reset)',
      ).argParser(durationFlag),
    )
    .addOption(
      new Option(
        '--kill-after <duration>',
        "after SIGTERM to the command's process group (lost lease, leftovers), SIGKILL this much later",
      )
        .argParser(durationFlag)
        .default(KILL_AFTER_MS, '10s'),
    )
    .option('--node-id <id>', "this node's name in the state and in status (default: hostname/pid/random)")
    .option('-q, --quiet', 'no progress lines, only errors')
    .option('-v, --verbose', 'stack traces and debug logs on errors')
    .addHelpText('after', `\n${RUN_ENV}\n${exitCodeHelp()}`)
    .action(async (argv: string[], flags: RunFlags) => {
      result.code = await runCommand(argv, flags);
    });

  withConnection(
    program
      .command('wait')
      .description(
        'wait until the key is done (here before, or elsewhere); never runs anything. For a container ' +
          'that must not start before a migration Job or another pod finished',
      )
      .requiredOption('-k, --key <key>', 'the once-key'),
  )
    .addOption(
      new Option('--timeout <duration>', 'how long to wait before giving up (exit 75)')
        .argParser(durationFlag)
        .default(DEFAULTS.waitTimeoutMs, '10m'),
    )
    .addOption(
      new Option(
        '--max-attempts <n>',
        'the attempts the runs allow: once the key failed on this many, exit 70 rather than wait',
      )
        .argParser(positiveInteger)
        .default(DEFAULTS.maxAttempts),
    )
    .option('--json', "print the key's status object as JSON on stdout when the wait ends")
    .option('-q, --quiet', 'no progress lines, only errors')
    .option('-v, --verbose', 'stack traces and debug logs on errors')
    .addHelpText('after', `\n${exitCodeHelp()}`)
    .action(async (flags: WaitFlags) => {
      result.code = await waitCommand(flags);
    });

  withConnection(
    program
      .command('list')
      .description(
        'every once-key of the namespace with its state, owner, attempts and age (SCAN, every master of a Cluster)',
      ),
  )
    .option('--state <state>', 'only keys in this state: running, done or failed')
    .option('--json', 'print an array of { key, ...status } (without values) as JSON')
    .option('-v, --verbose', 'stack traces and debug logs on errors')
    .addHelpText('after', `\n${exitCodeHelp()}`)
    .action(async (flags: ListFlags) => {
      result.code = await listCommand(flags);
    });

  withConnection(
    program
      .command('doctor')
      .description(
        'check what silently breaks exactly-once on this Redis (eviction, version, persistence, pub/sub ' +
          'buffers, replicas, permissions) and say what to change; exit 78 if something would',
      ),
  )
    .option('--json', 'print the findings as JSON')
    .option('-v, --verbose', 'stack traces and debug logs on errors')
    .addHelpText('after', `\n${exitCodeHelp()}`)
    .action(async (flags: DoctorFlags) => {
      result.code = await doctorCommand(flags);
    });

  withConnection(
    program
      .command('status')
      .description("print the key's state: idle, running, done or failed")
      .requiredOption('-k, --key <key>', 'the once-key'),
  )
    .option('--json', 'print the status object as JSON')
    .option('-v, --verbose', 'stack traces and debug logs on errors')
    .addHelpText('after', `\n${exitCodeHelp()}`)
    .action(async (flags: StatusFlags) => {
      result.code = await statusCommand(flags);
    });

  withConnection(
    program
      .command('reset')
      .description(
        "forget the key's state, so the next run runs the command again (refused while a leader runs)",
      )
      .requiredOption('-k, --key <key>', 'the once-key'),
  )
    .option('-f, --force', 'reset even while a leader runs (it loses its lease and stops its command)')
    .option('-v, --verbose', 'stack traces and debug logs on errors')
    .addHelpText('after', `\n${exitCodeHelp()}`)
    .action(async (flags: ResetFlags) => {
      result.code = await resetCommand(flags);
    });

  return program;
}

/** The options every command takes: where Redis is and which namespace. */
function withConnection(command: Command): Command {
  return command
    .addOption(
      new Option(
        '--redis <url>',
        `Redis URL, redis://[:password@]host:port[/db] (rediss:// for TLS), or host:port`,
      )
        .env('REDIS_URL')
        .default(DEFAULT_REDIS_URL),
    )
    .addOption(
      new Option(
        '--cluster <nodes>',
        'Redis Cluster seed nodes, host:port[,host:port...] (instead of --redis)',
      ),
    )
    .addOption(
      new Option('-n, --namespace <ns>', 'prefix of every Redis key redis-once uses').default(
        DEFAULTS.namespace,
      ),
    )
    .addOption(
      new Option('--redis-timeout <duration>', 'bound on every Redis round trip; past it, exit 69')
        .argParser(durationFlag)
        .default(DEFAULTS.redisTimeoutMs, '5s'),
    );
}

function durationFlag(text: string): number {
  try {
    return parseDuration(text);
  } catch (error) {
    // commander prefixes: option '--lease <duration>' argument '5x' is invalid.
    throw new InvalidArgumentError(`${(error as Error).message.replace(/^"[^"]*" is /, 'It is ')}`);
  }
}

function positiveInteger(text: string): number {
  if (!/^\s*\d+\s*$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text))) {
    throw new InvalidArgumentError('It must be a whole number of at least 1.');
  }
  return Number(text);
}
