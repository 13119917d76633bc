/**
 * Review of the CLI (run, wait, list, doctor): each test here reproduces a bug found in review and
 * FAILS on the code as reviewed. The comment above each says what breaks and which contract it breaks.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Finding } from '../../src/cli/doctor.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { type RedisServer, startRedis } from '../helpers/redis-server.js';
import { Cli, killAllClis, ROOT, runCli, running } from './cli.js';

let redis: RedisServer;
let dir: string;
let namespace: string;
/** Pids (or negative pgids) a test left running on purpose or by the bug; killed after each test. */
const strays = new Set<number>();
/** CLI processes a test spawned by hand (not through Cli); killed after each test. */
const spawned = new Set<ChildProcess>();

beforeAll(async () => {
  redis = await startRedis({ name: 'cli-review' });
});
afterAll(async () => {
  await redis.stop();
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'redis-once-review-'));
  namespace = `rev-${randomUUID()}`;
});
afterEach(async () => {
  await killAllClis();
  for (const child of spawned) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone
      }
      await once(child, 'close');
    }
  }
  spawned.clear();
  for (const pid of strays) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  strays.clear();
  rmSync(dir, { recursive: true, force: true });
});

function flags(command: string, key: string, ...rest: string[]): string[] {
  return [command, '--key', key, '--redis', redis.url, '--namespace', namespace, ...rest];
}

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const REGISTER_LUA = fileURLToPath(new URL('../../scripts/register-lua.mjs', import.meta.url));

/** The CLI as Cli.start runs it, but with the stdio a test chooses (a pipe it closes, /dev/full). */
function spawnCli(args: readonly string[], stdio: Array<'ignore' | 'pipe' | number>): ChildProcess {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.REDIS_URL;
  delete env.CI;
  delete env.DEBUG;
  const child = spawn(process.execPath, ['--import', 'tsx', '--import', REGISTER_LUA, MAIN, ...args], {
    cwd: ROOT,
    env,
    stdio,
    detached: true,
  });
  spawned.add(child);
  return child;
}

/** The child's exit code once it has closed, within `ms`. */
async function closed(child: ChildProcess, ms = 15_000): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const [code] = (await Promise.race([
      once(child, 'close'),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('the CLI did not exit')), ms);
      }),
    ])) as [number | null];
    return code;
  } finally {
    clearTimeout(timer);
  }
}

async function status(key: string): Promise<Record<string, unknown>> {
  const cli = await runCli([...flags('status', key), '--json']);
  return JSON.parse(cli.stdout) as Record<string, unknown>;
}

describe('run: signals reach the command once', () => {
  // BUG: a forwarded SIGTERM reaches a grandchild twice. The CLI forwards SIGTERM to the group
  // (run.ts:99 → command.ts signal()); `sh` dies at once, its child (the real work, shutting down
  // gracefully) is still running, so Command's exit handler (command.ts:73-75) takes it for a
  // "leftover" and stopGroup() (process-group.ts:74) sends the group SIGTERM again. Contract
  // (DESIGN "a signal reaches the command once", docs/cli.md "forwarded to the group, each signal
  // once"): many tools read a second SIGTERM/SIGINT as "abort now, skip the clean shutdown". The same
  // happens after a lost lease: terminate() sends SIGTERM, then the leftover path sends it again.
  it('delivers one forwarded SIGTERM to the real work under sh -c once, not twice', async () => {
    const terms = join(dir, 'terms');
    const worker = join(dir, 'worker.cjs');
    writeFileSync(
      worker,
      `const fs = require('node:fs');
       let seen = 0;
       process.on('SIGTERM', () => {
         fs.appendFileSync(${JSON.stringify(terms)}, 'SIGTERM\\n');
         // A graceful shutdown that takes a moment (closing connections, finishing a transaction).
         if (seen++ === 0) setTimeout(() => process.exit(0), 1000);
       });
       setTimeout(() => process.exit(99), 20000);
       console.log('listening');`,
    );
    const leader = Cli.start([
      ...flags('run', 'twice'),
      '--',
      'sh',
      '-c',
      `'${process.execPath}' '${worker}' & wait`,
    ]);
    await leader.waitFor('stdout', /listening/);
    leader.signal('SIGTERM');
    expect((await leader.exit()).code).toBe(143);
    expect(readFileSync(terms, 'utf8')).toBe('SIGTERM\n');
  });
});

describe("run: the CLI's own exit", () => {
  // BUG: when the CLI's stderr pipe closes (`redis-once run … 2>&1 | head`, a log shipper that
  // restarts), the CLI passes the command's stderr through (command.ts:62), gets EPIPE, and main.ts:12
  // calls process.exit(process.exitCode ?? 0): exitCode is not set while `run` runs, so the leader
  // exits 0 ("done", docs/cli.md exit codes) while the key is still running, and its command's group is
  // orphaned (DESIGN: "the CLI's own exit stops the whole group (no grandchild outlives its leader)"),
  // holding the lease until it expires.
  it('does not exit 0, leaving its command running, when its stderr reader goes away', async () => {
    const pidFile = join(dir, 'work');
    const child = spawnCli(
      [
        ...flags('run', 'epipe'),
        '--',
        'sh',
        '-c',
        `sleep 30 & echo $! > '${pidFile}'; while :; do echo tick >&2; sleep 0.1; done`,
      ],
      ['ignore', 'ignore', 'pipe'],
    );
    const exit = closed(child);
    let stderr = '';
    await new Promise<void>((resolve, reject) => {
      child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
        stderr += chunk;
        if (stderr.includes('tick')) resolve();
      });
      child.once('close', () => reject(new Error(`exited early:\n${stderr}`)));
    });
    const work = Number(readFileSync(pidFile, 'utf8'));
    strays.add(work);
    // The reader goes away (head has read its lines).
    child.stderr!.destroy();
    const code = await exit;
    const state = (await status('epipe')).state;
    expect({
      // Exit 0 means "done"; the key is not done.
      exitedZeroWhileNotDone: code === EXIT.OK && state !== 'done',
      // Whatever it exits with, no process of the attempt outlives it.
      workOutlivesTheCli: running(work),
    }).toEqual({ exitedZeroWhileNotDone: false, workOutlivesTheCli: false });
  });

  // BUG (same root, main.ts:11-14): any other error writing stderr is rethrown from the stream's
  // 'error' handler, an uncaught exception: with stderr on a full disk (here /dev/full, ENOSPC) the
  // leader crashes with exit 1 right after spawning the command (which looks like the command's own
  // code 1, docs/cli.md "1-255"), the command runs on orphaned, the key stays "running" until the lease
  // expires and is then taken over as a crash, although the command succeeds. Contract: exit codes
  // table; DESIGN "the CLI's own exit stops the whole group"; the attempt's outcome is recorded.
  it('supervises its command to the end when its stderr cannot be written (a full disk)', async () => {
    const full = openSync('/dev/full', 'w');
    const marker = join(dir, 'ran');
    let child: ChildProcess;
    try {
      child = spawnCli(
        [
          ...flags('run', 'full-disk'),
          '--',
          'sh',
          '-c',
          `echo $$ > '${marker}.pid'; sleep 0.5; echo ok > '${marker}'`,
        ],
        ['ignore', 'ignore', full],
      );
    } finally {
      closeSync(full);
    }
    const code = await closed(child);
    if (existsSync(`${marker}.pid`)) strays.add(Number(readFileSync(`${marker}.pid`, 'utf8')));
    const state = (await status('full-disk')).state;
    expect({ code, state }).toEqual({ code: EXIT.OK, state: 'done' });
  });
});

describe('no password from the URL in any output', () => {
  // BUG: a password with a `/`, `#` or `?` (base64-generated passwords often hold `/`) not
  // percent-encoded makes `new URL` throw, and the usage error prints the raw URL with the password:
  // secretsOf() (connection.ts:97) matches the userinfo with [^@/]*, which stops at the `/` and finds
  // no secret, so scrub() at connection.ts:49 masks nothing. Contract: "A password in the Redis URL
  // (or in REDIS_URL) is never printed" (docs/cli.md Output; DESIGN Security).
  it('does not print a password holding a slash when the URL cannot be parsed', async () => {
    const password = 'Zm9vYmFy/c2VjcmV0';
    for (const args of [
      ['status', '--key', 'k', '--redis', `redis://:${password}@127.0.0.1:6379`],
      ['wait', '--key', 'k', '--redis', `redis://default:${password}@127.0.0.1:6379`],
    ]) {
      const cli = await runCli(args);
      expect(cli.result.code).toBe(EXIT.USAGE);
      expect(cli.output).not.toContain('c2VjcmV0');
    }
    // REDIS_URL, as in a Kubernetes secret.
    const fromEnv = await runCli(['status', '--key', 'k'], {
      env: { REDIS_URL: `redis://:${password}@127.0.0.1:6379` },
    });
    expect(fromEnv.result.code).toBe(EXIT.USAGE);
    expect(fromEnv.output).not.toContain('c2VjcmV0');
  });

  // BUG: the stderr tail is cut to its last 2 KB first (command.ts:129) and scrubbed afterwards
  // (run.ts:142), so a password that straddles the cut is no longer whole when scrub() looks for it:
  // its end is stored in the failure record, shown by `status`, `wait --json`, every follower and
  // `list --json`. (The cut at a line start, command.ts:105-108, only helps when a newline follows.)
  // Contract: no password from the URL in any output, including the failure record.
  it('does not store the end of a password that straddles the 2 KB cut of the stderr tail', async () => {
    const secret = 'tail-secret-0123456789abcdef';
    const guarded = await startRedis({ name: 'cli-review-auth', args: ['--requirepass', secret] });
    try {
      const url = `redis://:${secret}@127.0.0.1:${guarded.port}`;
      // One long line (a JSON log line, say) with the URL in it; the last 2048 bytes start in the
      // middle of the password: its last 16 characters, then 2032 bytes of padding.
      const script = `process.stderr.write('x'.repeat(1000) + ${JSON.stringify(`connect ${url.slice(0, url.indexOf('@') - 16)}`)} + ${JSON.stringify(`${secret.slice(-16)}`)} + 'y'.repeat(2032)); process.exitCode = 1;`;
      const cli = await runCli([
        'run',
        '--key',
        'tail',
        '--redis',
        url,
        '--namespace',
        namespace,
        '--max-attempts',
        '1',
        '--',
        process.execPath,
        '-e',
        script,
      ]);
      expect(cli.result.code).toBe(1);
      const read = await runCli([
        'status',
        '--key',
        'tail',
        '--redis',
        url,
        '--namespace',
        namespace,
        '--json',
      ]);
      const recorded = (JSON.parse(read.stdout) as { error: { message: string } }).error.message;
      expect(recorded).toMatch(/its stderr ended with/);
      expect(recorded).not.toContain(secret.slice(-16));
    } finally {
      await guarded.stop();
    }
  });
});

describe('doctor with a user that may not read every setting', () => {
  let evicting: RedisServer;
  beforeAll(async () => {
    // An evicting policy, but no maxmemory: nothing can be evicted yet (docs: a warning).
    evicting = await startRedis({ name: 'cli-review-doctor', args: ['--maxmemory-policy', 'allkeys-lru'] });
    await evicting
      .client()
      .call('ACL', 'SETUSER', 'noconfig', 'on', '>noconfig-pass', '~*', '&*', '+@all', '-config');
  });
  afterAll(async () => {
    await evicting.stop();
  });

  async function doctor(): Promise<{ code: number | null; findings: Finding[] }> {
    const url = `redis://noconfig:noconfig-pass@${evicting.host}:${evicting.port}`;
    const cli = await runCli(['doctor', '--redis', url, '--json']);
    return { code: cli.result.code, findings: JSON.parse(cli.stdout || '[]') as Finding[] };
  }

  // BUG (false positive): when CONFIG GET is refused, judgeServer() (doctor.ts:165, 178) takes
  // maxmemory as unknown and counts it as "limited", so an evicting policy with maxmemory 0 FAILS
  // (exit 78), although INFO (which doctor already reads, doctor.ts:110) says `maxmemory:0`. Contract
  // (docs/cli.md doctor): "an evicting policy with no maxmemory yet" warns; "where a managed Redis
  // refuses CONFIG, the eviction policy and AOF still come from INFO, and what cannot be read is
  // reported as unknown, not as a failure". The same server with CONFIG allowed warns and exits 0.
  it('warns, not fails, of an evicting policy with no maxmemory when CONFIG is refused (INFO says maxmemory 0)', async () => {
    const run = await doctor();
    expect(run.findings.find((f) => f.check === 'eviction')).toMatchObject({ level: 'warn' });
    expect(run.code).toBe(EXIT.OK);
  });

  // BUG (false negative): with CONFIG refused, the pubsub-buffer check is dropped altogether
  // (doctor.ts:211-221 pushes only `persistence`): no finding at all, so the JSON and the verdict say
  // nothing about a setting that can disconnect every waiter. Contract (docs/cli.md doctor): what cannot
  // be read "is reported as unknown (`??`)".
  it('reports the pubsub buffer limit as unknown, not silently nothing, when CONFIG is refused', async () => {
    const run = await doctor();
    expect(run.findings.find((f) => f.check === 'pubsub-buffer')).toMatchObject({ level: 'unknown' });
  });

  // BUG: INFO refused (INFO and CONFIG are both in ACL category @dangerous, so the common
  // `+@all -@dangerous` user lacks both, while `run` works for it) makes doctor exit 71 "unexpected
  // error: NOPERM … 'info' command": factsOf() (doctor.ts:110) does not catch a refused INFO as it
  // does a refused CONFIG (doctor.ts:124-127), so no finding is printed and the permissions probe never
  // runs. Contract (docs/cli.md doctor): "what cannot be read is reported as unknown (`??`), not as a
  // failure"; exit 0 or 78 (71 is "unexpected internal error").
  it('reports what it cannot read as unknown, and still probes, for a user without INFO (+@all -@dangerous)', async () => {
    await evicting
      .client()
      .call('ACL', 'SETUSER', 'safe', 'on', '>safe-pass', '~*', '&*', '+@all', '-@dangerous');
    const url = `redis://safe:safe-pass@${evicting.host}:${evicting.port}`;
    const cli = await runCli(['doctor', '--redis', url, '--json']);
    expect(cli.stderr).not.toMatch(/unexpected error/);
    expect([EXIT.OK, EXIT.CONFIG]).toContain(cli.result.code);
    const findings = JSON.parse(cli.stdout || '[]') as Finding[];
    expect(findings.find((f) => f.check === 'permissions')).toMatchObject({ level: 'ok' });
  });
});
