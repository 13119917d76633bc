/**
 * `run` supervises the command as a process group of its own: no grandchild outlives the attempt,
 * each signal reaches the command once (in a terminal too), and a failure says why.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/exit-codes.js';
import { type RedisServer, startRedis } from '../helpers/redis-server.js';
import { Cli, killAllClis, ROOT, runCli, running } from './cli.js';

let redis: RedisServer;
let dir: string;
let namespace: string;

beforeAll(async () => {
  redis = await startRedis({ name: 'cli-supervise' });
});
afterAll(async () => {
  await redis.stop();
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'redis-once-supervise-'));
  namespace = `sup-${randomUUID()}`;
});
afterEach(async () => {
  await killAllClis();
  rmSync(dir, { recursive: true, force: true });
});

function flags(command: string, key: string, ...rest: string[]): string[] {
  return [command, '--key', key, '--redis', redis.url, '--namespace', namespace, ...rest];
}

/** The pid a command wrote to `name` in the test's directory, once it has. */
async function pidIn(cli: Cli, name: string): Promise<number> {
  await cli.waitFor('stdout', new RegExp(`wrote ${name}`));
  return Number(readFileSync(join(dir, name), 'utf8'));
}

/**
 * A shell that starts a grandchild (`sleep 30`, the real work), says where its pid is, and waits for
 * it; `prelude` runs first (a trap, say).
 */
function withGrandchild(prelude = ''): string[] {
  const file = join(dir, 'grandchild');
  return ['sh', '-c', `${prelude} sleep 30 & echo $! > '${file}'; echo 'wrote grandchild'; wait`];
}

/**
 * A node command that appends each `signal` it receives to the file `name`, and exits `code` 300 ms
 * after the first: long enough for a second delivery to arrive if one is coming.
 */
function counting(signal: NodeJS.Signals, name: string, code: number): string[] {
  const file = join(dir, name);
  const script = `
    const fs = require('node:fs');
    let seen = 0;
    process.on(${JSON.stringify(signal)}, () => {
      fs.appendFileSync(${JSON.stringify(file)}, ${JSON.stringify(signal)} + '\\n');
      if (seen++ === 0) setTimeout(() => process.exit(${code}), 300);
    });
    setTimeout(() => process.exit(99), 20000);
    console.log('listening');
  `;
  return [process.execPath, '-e', script];
}

describe('a lost lease stops the whole process group', () => {
  it('leaves no grandchild running after a forced reset: the leader exits 76 once the group is gone', async () => {
    const leader = Cli.start([...flags('run', 'grand', '--lease', '3s'), '--', ...withGrandchild()]);
    const grandchild = await pidIn(leader, 'grandchild');
    expect(running(grandchild)).toBe(true);
    expect((await runCli([...flags('reset', 'grand'), '--force'])).result.code).toBe(0);
    expect((await leader.exit(10_000)).code).toBe(EXIT.LEASE_LOST);
    // Before: `sh` got SIGTERM and exited; the sleep kept running, re-parented to PID 1.
    expect(running(grandchild)).toBe(false);
  });

  it('SIGKILLs a group that ignores SIGTERM after --kill-after, and only then exits', async () => {
    const leader = Cli.start([
      ...flags('run', 'stubborn', '--lease', '3s', '--kill-after', '700ms'),
      '--',
      ...withGrandchild("trap '' TERM;"),
    ]);
    const grandchild = await pidIn(leader, 'grandchild');
    expect((await runCli([...flags('reset', 'stubborn'), '--force'])).result.code).toBe(0);
    await leader.waitFor('stderr', /stopping the command \(SIGTERM, then SIGKILL after 700 ms\)/);
    const noticed = performance.now();
    expect((await leader.exit(10_000)).code).toBe(EXIT.LEASE_LOST);
    expect(performance.now() - noticed).toBeGreaterThanOrEqual(600);
    expect(running(grandchild)).toBe(false);
  });
});

describe("the CLI's own exit stops what the command left running", () => {
  it('stops a background job of a command that succeeded, and the key is done', async () => {
    const file = join(dir, 'grandchild');
    const cli = await runCli([
      ...flags('run', 'leftover', '--kill-after', '2s'),
      '--',
      'sh',
      '-c',
      `sleep 30 & echo $! > '${file}'`,
    ]);
    expect(cli.result.code).toBe(0);
    expect(cli.stderr).toMatch(/stopping what it left running in its process group/);
    expect(running(Number(readFileSync(file, 'utf8')))).toBe(false);
    const status = await runCli([...flags('status', 'leftover'), '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({ state: 'done' });
  });
});

describe('each signal reaches the command once', () => {
  it('forwards SIGTERM sent to the CLI alone (Kubernetes: PID 1, no terminal) once', async () => {
    const leader = Cli.start([...flags('run', 'k8s'), '--', ...counting('SIGTERM', 'terms', 143)]);
    await leader.waitFor('stdout', /listening/);
    leader.signal('SIGTERM');
    expect((await leader.exit()).code).toBe(143);
    expect(readFileSync(join(dir, 'terms'), 'utf8')).toBe('SIGTERM\n');
  });

  it('counts a command that exits 0 after a forwarded SIGTERM as interrupted: the next node runs it again', async () => {
    const leader = Cli.start([...flags('run', 'graceful'), '--', ...counting('SIGTERM', 'terms', 0)]);
    await leader.waitFor('stdout', /listening/);
    leader.signal('SIGTERM');
    expect((await leader.exit()).code).toBe(143);
    expect(leader.stderr).toMatch(
      /error: "graceful" was interrupted by SIGTERM \(the command exited with code 0\), so the attempt was recorded as failed/,
    );
    const status = await runCli([...flags('status', 'graceful'), '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({ state: 'failed', error: { name: 'InterruptedError' } });
    const next = await runCli([...flags('run', 'graceful'), '--', 'sh', '-c', 'echo "ran $ONCE_ATTEMPT"']);
    expect(next.result.code).toBe(0);
    expect(next.stdout).toBe('ran 2\n');
  });

  const hasScript = (() => {
    try {
      execFileSync('script', ['--version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();

  it.skipIf(!hasScript)('delivers a terminal’s Ctrl-C to the command once, not twice', async () => {
    const main = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
    const registerLua = fileURLToPath(new URL('../../scripts/register-lua.mjs', import.meta.url));
    const argv = [
      'node',
      '--import',
      'tsx',
      '--import',
      registerLua,
      main,
      ...flags('run', 'ctrl-c'),
      '--',
      ...counting('SIGINT', 'ints', 130),
    ];
    // `script` runs the CLI in a pseudo-terminal: a 0x03 byte written to it is the user's Ctrl-C, which
    // the terminal turns into SIGINT for its foreground process group.
    const quoted = argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    const terminal = spawn('script', ['-qec', `exec ${quoted}`, '/dev/null'], {
      cwd: ROOT,
      env: { ...process.env, TERM: 'xterm', CI: undefined, REDIS_URL: undefined },
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    let output = '';
    const listening = new Promise<void>((resolve) => {
      terminal.stdout!.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('listening')) resolve();
      });
    });
    const guard = setTimeout(() => process.kill(-terminal.pid!, 'SIGKILL'), 20_000);
    try {
      await listening;
      terminal.stdin!.write('\x03');
      await once(terminal, 'close');
    } finally {
      clearTimeout(guard);
    }
    // Before: the terminal signalled the CLI and the command (one foreground group), and the CLI
    // forwarded its SIGINT again: SIGINT twice.
    expect(readFileSync(join(dir, 'ints'), 'utf8')).toBe('SIGINT\n');
    expect(output).toMatch(/interrupted by SIGINT/);
  });
});

describe('a failure says why', () => {
  it("keeps the end of the command's stderr in the failure record, for status and every follower", async () => {
    const failing = [
      'sh',
      '-c',
      'echo "applying 0042_users.sql" >&2; echo "ERROR: relation \\"users\\" already exists" >&2; exit 3',
    ];
    const leader = await runCli([...flags('run', 'why', '--max-attempts', '1'), '--', ...failing]);
    expect(leader.result.code).toBe(3);
    // Its stderr still reaches the terminal as it is written.
    expect(leader.stderr).toMatch(/\napplying 0042_users\.sql\nERROR: relation "users" already exists\n/);
    const status = await runCli([...flags('status', 'why'), '--json']);
    expect(JSON.parse(status.stdout).error).toEqual({
      name: 'CommandFailedError',
      message:
        'the command (sh) exited with code 3; its stderr ended with: applying 0042_users.sql\nERROR: relation "users" already exists',
    });
    const follower = await runCli([...flags('run', 'why', '--max-attempts', '1'), '--', 'true']);
    expect(follower.result.code).toBe(EXIT.FAILED_ELSEWHERE);
    expect(follower.stderr).toMatch(/ERROR: relation "users" already exists/);
  });

  it('keeps only the last few KB of a long stderr, and never the Redis password', async () => {
    const secret = 's3cr3t-pass';
    const guarded = await startRedis({ name: 'cli-supervise-auth', args: ['--requirepass', secret] });
    try {
      const url = `redis://:${secret}@127.0.0.1:${guarded.port}`;
      const noisy = [
        'sh',
        '-c',
        `i=0; while [ $i -lt 500 ]; do echo "line $i of noise"; i=$((i+1)); done >&2; echo "connecting to $REDIS_URL failed" >&2; exit 1`,
      ];
      const cli = await runCli(
        [
          'run',
          '--key',
          'long',
          '--redis',
          url,
          '--namespace',
          namespace,
          '--max-attempts',
          '1',
          '--',
          ...noisy,
        ],
        { env: { REDIS_URL: url } },
      );
      expect(cli.result.code).toBe(1);
      const status = await runCli([
        'status',
        '--key',
        'long',
        '--redis',
        url,
        '--namespace',
        namespace,
        '--json',
      ]);
      const message: string = JSON.parse(status.stdout).error.message;
      expect(Buffer.byteLength(message)).toBeLessThan(2200);
      expect(message).toMatch(/its stderr ended with: line \d+ of noise\n/);
      expect(message).toMatch(/connecting to redis:\/\/:\*\*\*@127\.0\.0\.1:\d+ failed$/);
      expect(message).not.toContain(secret);
    } finally {
      await guarded.stop();
    }
  });
});
