import { describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/exit-codes.js';
import { runCli } from './cli.js';

/** No Redis is needed: every one of these is refused before connecting. */
const cases: Array<[string, string[], RegExp]> = [
  [
    'a duration without a known unit',
    ['run', '--key', 'k', '--lease', '5x', '--', 'true'],
    /^error: option '--lease <duration>' argument '5x' is invalid\. It is not a duration; use a positive number with a unit, such as 500ms, 30s, 10m or 1h \(a bare number is milliseconds\)\.\n/,
  ],
  [
    'a zero duration',
    ['run', '--key', 'k', '--timeout', '0s', '--', 'true'],
    /^error: option '--timeout <duration>' argument '0s' is invalid\. It is not a positive duration;/,
  ],
  [
    'a negative duration',
    ['status', '--key', 'k', '--redis-timeout', '-1s'],
    /^error: option '--redis-timeout <duration>' argument '-1s' is invalid\. It is not a duration;/,
  ],
  ['an unknown flag', ['run', '--key', 'k', '--bogus', '--', 'true'], /^error: unknown option '--bogus'\n/],
  ['no --key', ['run', '--', 'true'], /^error: required option '-k, --key <key>' not specified\n/],
  ['no command', ['run', '--key', 'k'], /^error: missing required argument 'command'\n/],
  [
    'a bad --max-attempts',
    ['run', '--key', 'k', '--max-attempts', 'two', '--', 'true'],
    /^error: option '--max-attempts <n>' argument 'two' is invalid\. It must be a whole number of at least 1\.\n/,
  ],
  [
    'a namespace with braces',
    ['status', '--key', 'k', '--namespace', 'a{b}'],
    /^redis-once: error: --namespace must be 1 to 128 characters without spaces or braces, got "a\{b\}"\.\n$/,
  ],
  [
    'a URL that is not redis://',
    ['reset', '--key', 'k', '--redis', 'http://user:hunter2@example.com'],
    /^redis-once: error: --redis "http:\/\/user:\*\*\*@example\.com" must be a redis:\/\/ or rediss:\/\/ URL, or host:port \(got http:\/\/\)\.\n$/,
  ],
  ['an empty key', ['status', '--key', ''], /^redis-once: error: --key must not be empty\.\n$/],
  ['an unknown command', ['frobnicate'], /^error: unknown command 'frobnicate'\n/],
];

// Each case is its own process; run them side by side.
describe.concurrent('usage errors', () => {
  it.each(cases)('exits 64 with one clear sentence for %s', async (_, args, message) => {
    const cli = await runCli(args);
    expect(cli.result.code).toBe(EXIT.USAGE);
    expect(cli.stderr).toMatch(message);
    expect(cli.stderr).not.toMatch(/\n\s+at /);
    expect(cli.output).not.toMatch(/hunter2/);
  });

  it('prints help with the exit codes for each command, and exits 0', async () => {
    const clis = await Promise.all(
      [[], ['run'], ['status'], ['reset']].map((command) => runCli([...command, '--help'])),
    );
    for (const cli of clis) {
      expect(cli.result.code).toBe(0);
      expect(cli.stdout).toMatch(/Usage: redis-once/);
      expect(cli.stdout).toMatch(/Exit codes:\n {2}0 /);
      expect(cli.stdout).toMatch(/\n {2}75 {5}gave up waiting after --timeout/);
    }
  });
});
