import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/exit-codes.js';
import { type RedisServer, startRedis } from '../helpers/redis-server.js';
import { closedPort } from '../helpers/topologies.js';
import { Cli, killAllClis, runCli } from './cli.js';

let redis: RedisServer;
let dir: string;
let namespace: string;

beforeAll(async () => {
  redis = await startRedis({ name: 'cli-run' });
});
afterAll(async () => {
  await redis.stop();
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'redis-once-cli-'));
  namespace = `cli-${randomUUID()}`;
});
afterEach(async () => {
  await killAllClis();
  rmSync(dir, { recursive: true, force: true });
});

/** `run` flags for this test's Redis and namespace. */
function run(key: string, ...rest: string[]): string[] {
  return ['run', '--key', key, '--redis', redis.url, '--namespace', namespace, ...rest];
}

/**
 * A shell command that prints `started <attempt> <previous outcome>`, then waits (bounded, 20 s) for
 * the file `release` in the test's directory, a gate the test opens with `release()`, then runs `then`.
 */
function gated(then = 'true'): string[] {
  const gate = join(dir, 'release');
  return [
    'sh',
    '-c',
    `echo "started $ONCE_ATTEMPT $ONCE_PREVIOUS_OUTCOME"; i=0; ` +
      `while [ ! -e '${gate}' ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; ${then}`,
  ];
}

function release(): void {
  writeFileSync(join(dir, 'release'), '');
}

describe('redis-once run', () => {
  it('runs the command once for 5 concurrent runs, and all 5 exit 0', async () => {
    const file = join(dir, 'ran');
    const key = 'migrate:v1';
    const clis = Array.from({ length: 5 }, (_, i) =>
      Cli.start([
        ...run(key, '--node-id', `pod-${i}`),
        '--',
        'sh',
        '-c',
        `echo "$ONCE_KEY $ONCE_NODE_ID $ONCE_FENCING_TOKEN $ONCE_ATTEMPT" >> '${file}'; sleep 0.5`,
      ]),
    );
    const exits = await Promise.all(clis.map((cli) => cli.exit()));

    expect(exits.map((e) => e.code)).toEqual([0, 0, 0, 0, 0]);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(1);
    const [ranKey, node, token, attempt] = lines[0]!.split(' ');
    expect(ranKey).toBe(key);
    expect(node).toMatch(/^pod-\d$/);
    expect(Number(token)).toBeGreaterThan(0);
    expect(attempt).toBe('1');
    const leaders = clis.filter((cli) => /succeeded here/.test(cli.stderr));
    expect(leaders).toHaveLength(1);
    for (const cli of clis.filter((c) => c !== leaders[0])) {
      expect(cli.stderr).toMatch(new RegExp(`is done by ${node}|was already done`));
    }
  });

  it("exits with the command's own code on the leader, and 70 on followers once attempts are spent", async () => {
    const flags = run('fails', '--max-attempts', '1');
    const leader = Cli.start([...flags, '--', ...gated('exit 7')]);
    await leader.waitFor('stdout', /started 1/);
    const followers = [Cli.start([...flags, '--', 'true']), Cli.start([...flags, '--', 'true'])];
    await Promise.all(followers.map((f) => f.waitFor('stderr', /waiting for "fails"/)));
    release();

    expect((await leader.exit()).code).toBe(7);
    expect(leader.stderr).toMatch(/error: "fails" failed here: the command \(sh\) exited with code 7\.\n/);
    for (const follower of followers) {
      expect((await follower.exit()).code).toBe(EXIT.FAILED_ELSEWHERE);
      expect(follower.stderr).toMatch(
        /error: "fails" failed on all 1 attempt\(s\) \(last error, on [^:]+\/\d+\/[0-9a-f]+: CommandFailedError: the command \(sh\) exited with code 7\); .*redis-once reset.*--max-attempts\.\n/,
      );
    }
    // Later runs fail fast the same way, without running anything.
    const late = await runCli([...flags, '--', 'sh', '-c', `touch '${join(dir, 'late')}'`]);
    expect(late.result.code).toBe(EXIT.FAILED_ELSEWHERE);
    expect(() => readFileSync(join(dir, 'late'))).toThrow();
  });

  it('takes over from a leader stopped by SIGTERM at once, long before its lease would expire', async () => {
    const flags = run('rollout', '--lease', '20s');
    const leader = Cli.start([...flags, '--', ...gated()]);
    await leader.waitFor('stdout', /started 1/);
    const followers = [Cli.start([...flags, '--', ...gated()]), Cli.start([...flags, '--', ...gated()])];
    await Promise.all(followers.map((f) => f.waitFor('stderr', /waiting for "rollout"/)));

    const t0 = performance.now();
    leader.signal('SIGTERM');
    const takeover = await Promise.any(followers.map((f) => f.waitFor('stdout', /started 2 (\S+)/)));
    const takeoverMs = performance.now() - t0;

    // The command got the signal and the lease was released, not left to expire (20 s).
    expect(takeoverMs).toBeLessThan(5_000);
    expect(takeover[1]).toBe('failed');
    expect(await leader.exit()).toEqual({ code: 143, signal: null });
    expect(leader.stderr).toMatch(/received SIGTERM; forwarding it to the command/);
    expect(leader.stderr).toMatch(
      /error: "rollout" was interrupted by SIGTERM .*another node can take over now\.\n/,
    );
    release();
    expect((await Promise.all(followers.map((f) => f.exit()))).map((e) => e.code)).toEqual([0, 0]);
    expect(followers.filter((f) => /started 2/.test(f.stdout))).toHaveLength(1);
    expect(
      followers.some((f) => /taking over "rollout" after the previous attempt on .* failed/.test(f.stderr)),
    ).toBe(true);
  });

  it('stops a waiting follower on SIGINT with 130, and the leader finishes undisturbed', async () => {
    const flags = run('patience');
    const leader = Cli.start([...flags, '--', ...gated()]);
    await leader.waitFor('stdout', /started 1/);
    const follower = Cli.start([...flags, '--', 'true']);
    await follower.waitFor('stderr', /waiting for "patience"/);

    follower.signal('SIGINT');
    expect((await follower.exit(5_000)).code).toBe(130);
    expect(follower.stderr).toMatch(/error: interrupted by SIGINT; stopped waiting for "patience"\.\n/);
    release();
    expect((await leader.exit()).code).toBe(0);
  });

  it('gives up waiting after --timeout with 75, while the leader goes on', async () => {
    const leader = Cli.start([...run('slow'), '--', ...gated()]);
    await leader.waitFor('stdout', /started 1/);
    const impatient = Cli.start([...run('slow', '--timeout', '700ms'), '--', 'true']);
    const exit = await impatient.exit(10_000);
    expect(exit.code).toBe(EXIT.WAIT_TIMEOUT);
    expect(performance.now() - impatient.startedAt).toBeLessThan(8_000);
    expect(impatient.stderr).toMatch(
      /error: gave up waiting for "slow" after 700 ms \(--timeout\); it is still running or waiting for a takeover elsewhere \(`redis-once status --key` shows who runs it\)\.\n$/,
    );
    release();
    expect((await leader.exit()).code).toBe(0);
  });

  it('refuses a key whose Redis state holds a foreign value with 65, changing nothing', async () => {
    const admin = redis.client();
    await admin.set(`${namespace}:{taken}:state`, 'not ours');
    const cli = await runCli([...run('taken'), '--', 'sh', '-c', `touch '${join(dir, 'ran')}'`]);
    expect(cli.result.code).toBe(EXIT.FOREIGN_VALUE);
    expect(cli.stderr).toMatch(
      /^redis-once: error: Redis key "[^"]*\{taken\}:state" holds a string, not redis-once state; nothing was changed; use another namespace, or delete that key if it is stale\.\n$/,
    );
    expect(await admin.get(`${namespace}:{taken}:state`)).toBe('not ours');
    expect(() => readFileSync(join(dir, 'ran'))).toThrow();
  });

  it('answers a run after done from the stored state, without running the command', async () => {
    expect((await runCli([...run('cached'), '--', 'true'])).result.code).toBe(0);
    const again = await runCli([...run('cached'), '--', 'sh', '-c', `touch '${join(dir, 'ran')}'`]);
    expect(again.result.code).toBe(0);
    expect(again.stderr).toMatch(
      /^redis-once: "cached" was already done \(fencing token \d+\); nothing to run\n$/,
    );
    const quiet = await runCli([...run('cached', '--quiet'), '--', 'true']);
    expect(quiet.result.code).toBe(0);
    expect(quiet.output).toBe('');
    expect(() => readFileSync(join(dir, 'ran'))).toThrow();
  });

  it('exits 127 when the command does not exist, and records the attempt as failed', async () => {
    const missing = await runCli([...run('missing'), '--', 'no-such-command-redis-once']);
    expect(missing.result.code).toBe(EXIT.COMMAND_NOT_FOUND);
    expect(missing.stderr).toMatch(
      /error: "missing" failed here: the command "no-such-command-redis-once" was not found/,
    );
    const status = await runCli([
      'status',
      '--key',
      'missing',
      '--redis',
      redis.url,
      '--namespace',
      namespace,
      '--json',
    ]);
    expect(JSON.parse(status.stdout)).toMatchObject({
      state: 'failed',
      attempts: 1,
      error: { name: 'CommandSpawnError' },
    });
  });
});

describe('redis-once reset while a leader runs', () => {
  it('refuses with 77 naming the leader; --force takes the lease, and the leader stops its command with 76', async () => {
    const leader = Cli.start([...run('busy', '--lease', '3s', '--node-id', 'pod-busy'), '--', ...gated()]);
    await leader.waitFor('stdout', /started 1/);
    const admin = ['--key', 'busy', '--redis', redis.url, '--namespace', namespace];

    const refused = await runCli(['reset', ...admin]);
    expect(refused.result.code).toBe(EXIT.RESET_REFUSED);
    expect(refused.stderr).toBe(
      'redis-once: error: "busy" is running on pod-busy; reset refused (pass --force to reset it anyway: the running leader loses its lease).\n',
    );

    const forced = await runCli(['reset', ...admin, '--force']);
    expect(forced.result.code).toBe(0);
    expect(forced.stdout).toMatch(/"busy" was reset \(forced\)/);
    // The leader notices at its next renewal (about a third of the lease), stops the command, exits 76.
    expect((await leader.exit(10_000)).code).toBe(EXIT.LEASE_LOST);
    expect(leader.stderr).toMatch(/lost the lease of "busy"; stopping the command/);
    expect(leader.stderr).toMatch(/error: this node lost the lease of "busy" while the command ran/);
  });
});

describe('Redis unreachable', () => {
  it('exits 69 within the bound for run, status and reset, and never prints the password', async () => {
    const url = `redis://admin:s3cr%3Ft@127.0.0.1:${await closedPort()}`;
    const common = ['--key', 'k', '--redis-timeout', '300ms'];
    const t0 = performance.now();
    const clis = await Promise.all([
      runCli(['run', ...common, '--redis', url, '--', 'true']),
      runCli(['run', ...common, '--verbose', '--', 'true'], { env: { REDIS_URL: url } }),
      runCli(['status', ...common, '--redis', url, '--verbose']),
      runCli(['reset', ...common, '--redis', url]),
    ]);
    expect(performance.now() - t0).toBeLessThan(8_000);
    for (const cli of clis) {
      expect(cli.result.code).toBe(EXIT.REDIS_UNAVAILABLE);
      expect(cli.stderr).toMatch(
        /error: Redis at redis:\/\/admin:\*\*\*@127\.0\.0\.1:\d+ is unreachable: .*\(--redis-timeout\)/,
      );
      expect(cli.output).not.toMatch(/s3cr/);
    }
    // --verbose adds the stack trace (still masked); without it there is none.
    expect(clis[1]!.stderr).toMatch(/\n\s+at /);
    expect(clis[0]!.stderr).not.toMatch(/\n\s+at /);
  });
});
