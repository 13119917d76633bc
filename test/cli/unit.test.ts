import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { maskRedisUrl, parseClusterNodes, resolveConnection, scrub } from '../../src/cli/connection.js';
import { formatDuration, parseDuration } from '../../src/cli/durations.js';
import {
  CommandFailedError,
  describeError,
  InterruptedError,
  signalExitCode,
  UsageError,
} from '../../src/cli/errors.js';
import { EXIT, EXIT_CODE_TABLE } from '../../src/cli/exit-codes.js';
import { detectMode, Progress } from '../../src/cli/progress.js';
import { formatStatus } from '../../src/cli/status.js';
import {
  LeaseLostError,
  OnceAbortError,
  OnceBusyError,
  OnceFailedError,
  OnceForeignValueError,
  OnceInputError,
  type OnceStatus,
  OnceTimeoutError,
  RedisUnavailableError,
} from '../../src/index.js';

describe('durations', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['10m', 600_000],
    ['1h', 3_600_000],
    ['1.5s', 1_500],
    ['250', 250],
    [' 2S ', 2_000],
  ])('reads %j as %i ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each([
    ['5x', /"5x" is not a duration; use a positive number with a unit, such as 500ms, 30s, 10m or 1h/],
    ['', /"" is not a duration/],
    ['-1s', /"-1s" is not a duration/],
    ['0', /"0" is not a positive duration/],
    ['1.5', /"1.5" is not a whole number of milliseconds/],
    ['1e3', /"1e3" is not a duration/],
    ['30d', /"30d" is not a duration/],
    ['1000h', /"1000h" is longer than the longest supported duration/],
  ])('refuses %j in one sentence', (text, message) => {
    expect(() => parseDuration(text)).toThrow(message);
  });

  it('formats elapsed times for progress lines', () => {
    expect(formatDuration(12)).toBe('12 ms');
    expect(formatDuration(1_540)).toBe('1.5 s');
    expect(formatDuration(42_000)).toBe('42 s');
    expect(formatDuration(90_000)).toBe('1 min 30 s');
    expect(formatDuration(7_260_000)).toBe('2 h 1 min');
  });
});

describe('connection', () => {
  it('masks a password, and a user given without one', () => {
    expect(maskRedisUrl('redis://:pw@h:6379/2')).toBe('redis://:***@h:6379/2');
    expect(maskRedisUrl('rediss://u:p%40ss@h:6380')).toBe('rediss://u:***@h:6380');
    expect(maskRedisUrl('redis://secret@h')).toBe('redis://***@h');
    expect(maskRedisUrl('redis://h:1')).toBe('redis://h:1');
  });

  it('takes --redis, then REDIS_URL (via commander), then the default; bare host:port is fine', () => {
    expect(resolveConnection({ redis: 'redis://:pw@h:1' })).toEqual({
      spec: 'redis://:pw@h:1',
      display: 'redis://:***@h:1',
      secrets: ['pw'],
    });
    expect(resolveConnection({ redis: 'cache.internal:6380' }).spec).toBe('redis://cache.internal:6380');
    expect(resolveConnection({}).spec).toBe('redis://127.0.0.1:6379');
    expect(() => resolveConnection({ redis: 'http://h' })).toThrow(UsageError);
  });

  it('knows every spelling of the password, so none is ever printed', () => {
    const { secrets } = resolveConnection({ redis: 'redis://u:a%2Fb@h:1' });
    expect(scrub('a%2Fb and a/b and a%2Fb', secrets)).toBe('*** and *** and ***');
  });

  it('reads --cluster seed nodes', () => {
    expect(parseClusterNodes('a:7000, b ,[::1]:7002')).toEqual([
      { host: 'a', port: 7000 },
      { host: 'b', port: 6379 },
      { host: '::1', port: 7002 },
    ]);
    expect(resolveConnection({ cluster: 'a:7000', redis: 'redis://ignored' }).spec).toEqual({
      cluster: [{ host: 'a', port: 7000 }],
    });
    expect(() => parseClusterNodes('a:99999')).toThrow(/--cluster "a:99999" is not host:port/);
    expect(() => parseClusterNodes(' , ')).toThrow(/at least one/);
  });
});

describe('exit codes', () => {
  const key = 'migrate:v1';
  const cases: Array<[Error, number]> = [
    [new UsageError('bad'), EXIT.USAGE],
    [new OnceInputError('namespace must be short.'), EXIT.USAGE],
    [new OnceForeignValueError({ key, redisKey: 'once:{k}:state', detail: 'a string' }), EXIT.FOREIGN_VALUE],
    [
      new RedisUnavailableError('Redis at h:1 did not answer read within 5 ms (redisTimeoutMs).'),
      EXIT.REDIS_UNAVAILABLE,
    ],
    [
      new OnceFailedError({ key, attempts: 3, lastErrorName: 'Error', lastErrorMessage: 'boom' }),
      EXIT.FAILED_ELSEWHERE,
    ],
    [new Error('surprise'), EXIT.INTERNAL],
    [new OnceTimeoutError('x', { key, timeoutMs: 600_000 }), EXIT.WAIT_TIMEOUT],
    [new LeaseLostError('x', { key }), EXIT.LEASE_LOST],
    [new OnceBusyError({ key, owner: 'pod-1' }), EXIT.RESET_REFUSED],
    [new CommandFailedError(3, null, 'sh'), 3],
    [new CommandFailedError(137, 'SIGKILL', 'sh'), 137],
    [new InterruptedError('SIGTERM', ''), 143],
    [new OnceAbortError({ key, cause: 'SIGINT' }), 130],
  ];
  it.each(cases.map(([error, code]) => [error.name, code, error] as const))(
    'maps %s to %i, with a one-line message',
    (_, code, error) => {
      const outcome = describeError(error, { key, redis: 'redis://h:1' });
      expect(outcome.code).toBe(code);
      expect(outcome.message).toMatch(/^\S.*[^.]$/);
      expect(outcome.message).not.toMatch(/\n/);
    },
  );

  it('uses distinct codes for distinct outcomes, none of them 1 or 2', () => {
    const codes = Object.values(EXIT);
    expect(new Set(codes).size).toBe(codes.length);
    expect(codes).not.toContain(1);
    expect(codes).not.toContain(2);
    expect(signalExitCode('SIGINT')).toBe(130);
  });

  it('names the CLI flag, not the library option, in messages', () => {
    const outcome = describeError(
      new RedisUnavailableError('The Redis connection did not become ready in time (redisTimeoutMs).'),
      {
        redis: 'redis://:***@h:1',
      },
    );
    expect(outcome.message).toBe(
      'Redis at redis://:***@h:1 is unreachable: the Redis connection did not become ready in time (--redis-timeout)',
    );
  });

  it('has the same table in docs/cli.md as in --help', () => {
    const docs = readFileSync(new URL('../../docs/cli.md', import.meta.url), 'utf8');
    const section = docs.slice(docs.indexOf('\n## Exit codes'), docs.indexOf('\n## Signals'));
    const rows = [...section.matchAll(/^\| `([^`]+)` \| /gm)].map((match) => match[1]);
    expect(rows).toEqual(EXIT_CODE_TABLE.map(([code]) => code));
  });
});

describe('status text', () => {
  it('leaves out what is unknown and shows what a person needs', () => {
    const status: OnceStatus = {
      state: 'running',
      owner: 'pod-2',
      fencingToken: 9,
      attempts: 2,
      startedAt: Date.UTC(2030, 0, 1),
    };
    expect(formatStatus('k', status, Date.UTC(2030, 0, 1) + 3_000)).toBe(
      '"k" is running\n' +
        '  state          running\n' +
        '  owner          pod-2\n' +
        '  fencing token  9\n' +
        '  attempts       2\n' +
        '  started        2030-01-01T00:00:00.000Z (3.0 s ago)\n',
    );
  });
});

describe('progress', () => {
  let written: string;
  const stream = {
    write: (chunk: string) => {
      written += chunk;
      return true;
    },
  } as unknown as NodeJS.WritableStream;
  beforeEach(() => {
    written = '';
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const running: OnceStatus = { state: 'running', owner: 'pod-7', attempts: 1, fencingToken: 3 };

  it('plain: one line at start, one per heartbeat, one at the end; one status read per line', async () => {
    const lookup = vi.fn(async () => running);
    const progress = new Progress({
      mode: 'plain',
      key: 'k',
      stream,
      lookup,
      heartbeatMs: 10_000,
      now: () => performance.now(),
    });
    progress.waiting();
    await vi.advanceTimersByTimeAsync(0);
    expect(written).toBe('redis-once: waiting for "k" (leader pod-7, attempt 1)\n');
    await vi.advanceTimersByTimeAsync(9_000);
    expect(written.split('\n')).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(written).toMatch(/\nredis-once: still waiting for "k" \(leader pod-7, attempt 1\), 10 s\n$/);
    await vi.advanceTimersByTimeAsync(20_000);
    expect(written.match(/still waiting/g)).toHaveLength(3);
    expect(lookup).toHaveBeenCalledTimes(4);
    progress.succeed('"k" is done');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(written).toMatch(/\nredis-once: "k" is done\n$/);
    expect(written).not.toContain('\u001b');
    expect(lookup).toHaveBeenCalledTimes(4);
  });

  it('spinner: redraws locally, reads the leader at most every refreshMs, and clears for the leader line', async () => {
    const lookup = vi.fn(async () => running);
    const progress = new Progress({ mode: 'spinner', key: 'k', stream, lookup, refreshMs: 5_000 });
    progress.waiting();
    await vi.advanceTimersByTimeAsync(12_000);
    expect(written).toMatch(
      /waiting for "k" \(leader pod-7, attempt 1\) 1\d\.\d s|waiting for "k" \(leader pod-7, attempt 1\) \d+ s/,
    );
    // Redrawn every 80 ms, but Redis is read only at start and at each refresh.
    expect(lookup.mock.calls.length).toBeLessThanOrEqual(3);
    progress.leading('taking over "k"');
    const after = written.length;
    await vi.advanceTimersByTimeAsync(10_000);
    expect(written.slice(after)).toBe('');
    expect(written).toMatch(/redis-once: taking over "k"\n$/);
  });

  it('chooses the spinner only for a sized terminal on both stdout and stderr, without CI', () => {
    const tty = { isTTY: true, columns: 80 } as const;
    expect(detectMode(false, {}, { stdout: tty, stderr: tty })).toBe('spinner');
    expect(detectMode(true, {}, { stdout: tty, stderr: tty })).toBe('quiet');
    expect(detectMode(false, { CI: 'true' }, { stdout: tty, stderr: tty })).toBe('plain');
    expect(detectMode(false, { TERM: 'dumb' }, { stdout: tty, stderr: tty })).toBe('plain');
    expect(detectMode(false, {}, { stdout: {}, stderr: tty })).toBe('plain');
    expect(detectMode(false, {}, { stdout: tty, stderr: { isTTY: true, columns: 0 } })).toBe('plain');
  });

  it('quiet: prints nothing and reads nothing', async () => {
    const lookup = vi.fn(async () => running);
    const progress = new Progress({ mode: 'quiet', key: 'k', stream, lookup });
    progress.waiting();
    await vi.advanceTimersByTimeAsync(30_000);
    progress.succeed('done');
    expect(written).toBe('');
    expect(lookup).not.toHaveBeenCalled();
  });
});
