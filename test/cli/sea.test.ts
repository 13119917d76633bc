/**
 * The single executable (`npm run build:sea`): built from this checkout, copied alone into an empty
 * folder (no node_modules, no node on PATH), it runs, waits and reads status against a real server.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer, startRedis } from '../helpers/redis-server.js';
import { ROOT } from './cli.js';

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe.skipIf(process.platform !== 'linux')('the single executable', () => {
  let redis: RedisServer;
  let dir: string;
  let executable: string;
  let bin: string;

  beforeAll(async () => {
    redis = await startRedis({ name: 'cli-sea' });
    dir = mkdtempSync(join(tmpdir(), 'redis-once-sea-'));
    execFileSync(process.execPath, ['scripts/build-sea.mjs', join(dir, 'build')], {
      cwd: ROOT,
      stdio: 'ignore',
    });
    // Alone in a folder of its own: nothing to resolve a module from.
    const image = join(dir, 'image');
    mkdirSync(image);
    executable = join(image, 'redis-once');
    copyFileSync(join(dir, 'build', 'redis-once'), executable);
    rmSync(join(dir, 'build'), { recursive: true });
    // A PATH with a shell and nothing else: no node to fall back on.
    bin = join(dir, 'bin');
    mkdirSync(bin);
    symlinkSync('/bin/sh', join(bin, 'sh'));
  }, 120_000);
  afterAll(async () => {
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function exe(...args: string[]): Promise<Exit> {
    const child = spawn(executable, args, {
      cwd: join(dir, 'image'),
      env: { PATH: bin, HOME: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const [code] = (await once(child, 'close')) as [number | null];
    clearTimeout(timer);
    return { code, stdout, stderr };
  }

  it('runs a command once, then waits and reads status, with no node_modules and no node', async () => {
    const flags = ['--key', 'migrate', '--redis', redis.url, '--namespace', `sea-${randomUUID()}`];
    const ran = await exe('run', ...flags, '--', 'sh', '-c', 'echo "migrated by attempt $ONCE_ATTEMPT"');
    expect(ran).toMatchObject({ code: 0, stdout: 'migrated by attempt 1\n' });
    expect(ran.stderr).not.toMatch(/Warning|require\(\)/);
    expect((await exe('wait', ...flags)).code).toBe(0);
    const status = await exe('status', ...flags, '--json');
    expect(JSON.parse(status.stdout)).toMatchObject({ state: 'done', attempts: 1 });
    expect((await exe('--version')).stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
  });
});
