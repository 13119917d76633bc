/**
 * The spinner needs a terminal: `script` (util-linux) gives the CLI a pseudo-terminal. Skipped where
 * `script` is missing.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer, startRedis } from '../helpers/redis-server.js';
import { Cli, killAllClis, ROOT } from './cli.js';

const hasScript = (() => {
  try {
    execFileSync('script', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const REGISTER_LUA = fileURLToPath(new URL('../../scripts/register-lua.mjs', import.meta.url));

/**
 * Runs `redis-once …args` in a pseudo-terminal of `columns` columns; resolves with all it wrote.
 * `onOutput` sees the output so far each time more arrives.
 */
async function inTerminal(
  columns: number,
  args: string[],
  onOutput: (output: string) => void,
): Promise<string> {
  const cli = ['node', '--import', 'tsx', '--import', REGISTER_LUA, MAIN, ...args]
    .map((a) => `'${a}'`)
    .join(' ');
  const child = spawn('script', ['-qec', `stty cols ${columns} rows 24; exec ${cli}`, '/dev/null'], {
    cwd: ROOT,
    env: { ...process.env, TERM: 'xterm', CI: undefined, REDIS_URL: undefined },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    onOutput(output);
    // A spinner that never stops redrawing would fill the disk: fail fast instead.
    if (output.length > 200_000) process.kill(-child.pid!, 'SIGKILL');
  });
  const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 15_000);
  await once(child, 'close');
  clearTimeout(timer);
  return output;
}

describe.skipIf(!hasScript)('in a terminal', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedis({ name: 'cli-tty' });
  });
  afterEach(killAllClis);
  afterAll(async () => {
    await redis.stop();
  });

  async function waitBehind(columns: number): Promise<string> {
    const namespace = `tty-${randomUUID()}`;
    const flags = ['--key', 'k', '--redis', redis.url, '--namespace', namespace];
    // The leader's command runs until the follower shows it is waiting (at most 10 s).
    const release = join(mkdtempSync(join(tmpdir(), 'tty-')), 'release');
    const leader = Cli.start([
      'run',
      ...flags,
      '--node-id',
      'pod-lead',
      '--',
      'sh',
      '-c',
      `echo started; i=0; while [ ! -e '${release}' ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done`,
    ]);
    await leader.waitFor('stdout', /started/);
    const output = await inTerminal(columns, ['run', ...flags, '--', 'true'], (soFar) => {
      if (/\(leader pod-lead, attempt 1\)( \d+ s|\r?\n)/.test(soFar) && !existsSync(release))
        writeFileSync(release, '');
    });
    expect((await leader.exit()).code).toBe(0);
    return output;
  }

  it('waits behind a spinner that names the leader, then leaves one final line', async () => {
    const output = await waitBehind(100);
    expect(output).toMatch(/waiting for "k" \(leader pod-lead, attempt 1\) \d+ s/);
    expect(output).toMatch(/"k" is done by pod-lead \(fencing token \d+\); waited/);
    expect(output).toContain('\u001b[?25h'); // the cursor is shown again
    expect(output.length).toBeLessThan(50_000);
  });

  it('falls back to plain lines in a terminal without a width', async () => {
    const output = await waitBehind(0);
    expect(output).toMatch(/^redis-once: waiting for "k" \(leader pod-lead, attempt 1\)\r?\n/);
    expect(output).not.toContain('\u001b[');
  });
});
