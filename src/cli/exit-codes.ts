/**
 * Exit codes of `redis-once`. Chosen from sysexits.h (64–78), which ordinary commands rarely use, so a
 * script can tell redis-once's own outcomes from the command's; `run` passes the command's own code
 * through when the command ran here and failed. docs/cli.md has the same table (a test compares them).
 */
export const EXIT = Object.freeze({
  /** Done: here, elsewhere, or already before. `status` and `reset` succeeded. */
  OK: 0,
  /** EX_USAGE: a bad flag, duration, key or namespace, or no command. */
  USAGE: 64,
  /** EX_DATAERR: a Redis key of ours holds a value redis-once did not write. */
  FOREIGN_VALUE: 65,
  /**
   * EX_UNAVAILABLE: Redis did not answer within --redis-timeout, or refused us (TLS rejected its
   * certificate, it rejected the credentials, the ACL user lacks a permission): the message says which.
   */
  REDIS_UNAVAILABLE: 69,
  /** EX_SOFTWARE: the key failed on every allowed attempt, elsewhere (OnceFailedError). */
  FAILED_ELSEWHERE: 70,
  /** EX_OSERR: an unexpected internal error (run with --verbose for the stack trace). */
  INTERNAL: 71,
  /** EX_TEMPFAIL: --timeout elapsed while waiting for another node; the work goes on there. */
  WAIT_TIMEOUT: 75,
  /** EX_PROTOCOL: this leader lost its lease while the command ran; the command was stopped. */
  LEASE_LOST: 76,
  /** EX_NOPERM: `reset` refused because a leader is running (pass --force). */
  RESET_REFUSED: 77,
  /** EX_CONFIG: `doctor` found a setting that breaks exactly-once. */
  CONFIG: 78,
  /** The command could not be executed (permission), as in a shell. */
  COMMAND_NOT_EXECUTABLE: 126,
  /** The command was not found, as in a shell. */
  COMMAND_NOT_FOUND: 127,
});

/** Interrupted by a signal: 128 + its number (130 for SIGINT, 143 for SIGTERM), as shells report it. */
export const SIGNAL_BASE = 128;

/** The table printed by `--help` and kept in docs/cli.md: [code, meaning]. */
export const EXIT_CODE_TABLE: ReadonlyArray<readonly [string, string]> = [
  ['0', 'done: the command ran here and succeeded, or the key was done elsewhere or before'],
  ['1-255', 'run: the command ran here and failed: its own exit code, whatever it is'],
  [String(EXIT.USAGE), 'usage error: unknown or missing flag, bad duration, key or namespace'],
  [String(EXIT.FOREIGN_VALUE), 'a Redis key of ours holds a value redis-once did not write'],
  [
    String(EXIT.REDIS_UNAVAILABLE),
    'Redis unreachable within --redis-timeout, or refusing (TLS certificate, password, ACL)',
  ],
  [String(EXIT.FAILED_ELSEWHERE), 'the key failed on every allowed attempt (--max-attempts), elsewhere'],
  [String(EXIT.INTERNAL), 'unexpected internal error (--verbose shows the stack trace)'],
  [String(EXIT.WAIT_TIMEOUT), 'gave up waiting after --timeout; the run goes on elsewhere'],
  [String(EXIT.LEASE_LOST), 'this node lost its lease while the command ran; the command was stopped'],
  [String(EXIT.RESET_REFUSED), 'reset refused: a leader is running (use --force)'],
  [String(EXIT.CONFIG), 'doctor: a Redis setting breaks exactly-once (each finding says what to change)'],
  [String(EXIT.COMMAND_NOT_EXECUTABLE), 'run: the command is not executable'],
  [String(EXIT.COMMAND_NOT_FOUND), 'run: the command was not found'],
  ['128+N', 'interrupted by signal N (130 SIGINT, 143 SIGTERM); also a command killed by signal N'],
];

export function exitCodeHelp(): string {
  const width = Math.max(...EXIT_CODE_TABLE.map(([code]) => code.length));
  return `Exit codes:\n${EXIT_CODE_TABLE.map(([code, meaning]) => `  ${code.padEnd(width)}  ${meaning}`).join('\n')}\n`;
}
