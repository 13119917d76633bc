/**
 * The demo's Redis: REDIS_URL if set; else a throwaway `redis-server` on a free loopback port; else,
 * where Docker runs, a `redis:7` container (testcontainers); else one sentence on how to get Redis.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../scripts/free-port.js';
import { dockerReachable, findRedisServer } from '../scripts/redis-source.js';

export interface DemoRedis {
  url: string;
  /** Where it came from, for the first line of output. */
  description: string;
  stop(): Promise<void>;
}

export class NoRedisError extends Error {
  override name = 'NoRedisError';
}

export const HOW_TO_GET_REDIS =
  'No Redis for the demo: install redis-server (apt-get install redis-server, brew install redis), ' +
  'start Docker, or set REDIS_URL=redis://host:6379.';

export async function startDemoRedis(): Promise<DemoRedis> {
  if (process.env.REDIS_URL) {
    return { url: process.env.REDIS_URL, description: 'REDIS_URL', stop: async () => {} };
  }
  const bin = findRedisServer();
  if (bin) return startBinary(bin);
  if (await dockerReachable()) return startContainer();
  throw new NoRedisError(HOW_TO_GET_REDIS);
}

async function startBinary(bin: string): Promise<DemoRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'redis-once-demo-'));
  const child = spawn(
    bin,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = once(child, 'exit');
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const force = setTimeout(() => child.kill('SIGKILL'), 3_000);
      await exited;
      clearTimeout(force);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await untilAnswers('127.0.0.1', port, () => child.exitCode !== null);
  } catch (error) {
    await stop();
    throw new Error(`redis-server did not start: ${(error as Error).message} ${stderr.trim()}`);
  }
  return { url: `redis://127.0.0.1:${port}`, description: `a throwaway redis-server on port ${port}`, stop };
}

async function startContainer(): Promise<DemoRedis> {
  const { GenericContainer } = await import('testcontainers');
  const container = await new GenericContainer('redis:7')
    .withExposedPorts(6379)
    .withCommand(['redis-server', '--save', '', '--appendonly', 'no'])
    .start();
  const host = container.getHost();
  const port = container.getMappedPort(6379);
  await untilAnswers(host, port, () => false);
  return {
    url: `redis://${host}:${port}`,
    description: 'a redis:7 container (testcontainers)',
    stop: async () => {
      await container.stop();
    },
  };
}

/** PING until +PONG, for at most 10 s. */
async function untilAnswers(host: string, port: number, gone: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
    if (await pings(host, port)) return;
    if (gone()) throw new Error('it exited');
    if (Date.now() > deadline) throw new Error('it did not answer PING within 10 s');
    await sleep(wait);
  }
}

function pings(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const finish = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => finish(false));
    socket.on('error', () => finish(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => finish(chunk.toString().startsWith('+PONG')));
  });
}
