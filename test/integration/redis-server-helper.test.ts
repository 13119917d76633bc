import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gate, waitFor } from '../helpers/gate.js';
import {
  canInjectFaults,
  commandStats,
  diffStats,
  maskUrl,
  type RedisServer,
  startRedis,
  totalCommands,
} from '../helpers/redis-server.js';

/** Signal 0 checks for existence; the process is reaped once `kill()`/`stop()` resolved. */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('startRedis', () => {
  let server: RedisServer;

  beforeAll(async () => {
    server = await startRedis({ name: 'basic' });
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('starts a server that answers PING', async () => {
    expect(server.url).toMatch(/^rediss?:\/\//);
    expect(await server.client().ping()).toBe('PONG');
  });

  it('counts the commands run between two commandStats snapshots', async () => {
    const client = server.client();
    await client.ping();
    const before = await commandStats(client);
    await client.set('helper:key', 'v');
    await client.get('helper:key');
    await client.get('helper:key');
    const diff = diffStats(before, await commandStats(client));
    expect(diff.get('get')).toBe(2);
    expect(totalCommands(diff)).toBe(3);
    expect(totalCommands(diff, { exclude: ['GET'] })).toBe(1);
  });
});

describe.skipIf(!canInjectFaults)('fault injection with a redis-server binary', () => {
  let server: RedisServer;

  beforeAll(async () => {
    server = await startRedis({ name: 'faults' });
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('binds loopback only, with a pid', () => {
    expect(server.source).toBe('binary');
    expect(server.host).toBe('127.0.0.1');
    expect(server.url).toBe(`redis://127.0.0.1:${server.port}`);
    expect(server.pid).toBeTypeOf('number');
  });

  it('kill makes a command fail, and restart brings the server back on the same port', async () => {
    // No retries, so the command fails as soon as the connection is lost instead of being queued.
    const client = server.client({ maxRetriesPerRequest: 0 });
    await client.set('k', 'v');
    const { port, pid } = server;

    await server.kill();
    expect(isRunning(pid!)).toBe(false);
    expect(server.pid).toBeUndefined();
    await expect(client.ping()).rejects.toThrow();

    await server.restart();
    expect(server.port).toBe(port);
    expect(server.pid).not.toBe(pid);
    expect(await client.ping()).toBe('PONG');
    // Nothing is persisted: the restarted server is empty.
    expect(await client.get('k')).toBeNull();
  });

  it('pause makes PING go unanswered, and resume makes it answer', async () => {
    const client = server.client({ commandTimeout: 200 });
    await client.ping();

    await server.pause();
    await expect(client.ping()).rejects.toThrow(/timed out/i);

    await server.resume();
    expect(await client.ping()).toBe('PONG');
  });

  it('gives two servers in one file different ports', async () => {
    const other = await startRedis({ name: 'other' });
    try {
      expect(other.port).not.toBe(server.port);
      expect(await other.client().ping()).toBe('PONG');
    } finally {
      await other.stop();
    }
  });

  it('stop disconnects clients and ends the process, and may be repeated', async () => {
    const other = await startRedis({ name: 'stopped' });
    const client = other.client();
    await client.ping();
    const pid = other.pid!;

    await other.stop();
    expect(client.status).toBe('end');
    expect(isRunning(pid)).toBe(false);
    await other.stop();
  });

  it('stop is safe after kill, even with a client left reconnecting', async () => {
    const other = await startRedis({ name: 'killed' });
    const client = other.client();
    await client.ping();

    await other.kill();
    await waitFor(() => client.status === 'reconnecting', { what: 'the client to notice the kill' });
    await other.stop();
    expect(client.status).toBe('end');
    await expect(client.ping()).rejects.toThrow('Connection is closed');
  });

  it('stop ends a paused server and its clients', async () => {
    const other = await startRedis({ name: 'paused' });
    const client = other.client();
    await client.ping();
    const pid = other.pid!;
    await other.pause();

    await other.stop();
    expect(isRunning(pid)).toBe(false);
    expect(client.status).toBe('end');
  });
});

describe('test helpers', () => {
  it('gate holds waiters until opened, and keeps the first value', async () => {
    const g = gate<number>();
    expect(g.opened).toBe(false);
    g.open(1);
    g.open(2);
    expect(g.opened).toBe(true);
    expect(await g.promise).toBe(1);
  });

  it('waitFor names what it waited for when it times out', async () => {
    await expect(waitFor(() => false, { timeoutMs: 30, what: 'pigs to fly' })).rejects.toThrow(
      'Timed out after 30 ms waiting for pigs to fly',
    );
  });

  it('maskUrl hides passwords', () => {
    expect(maskUrl('redis://:secret@db.example:6380/2')).toBe('redis://:***@db.example:6380/2');
    expect(maskUrl('rediss://user:secret@db.example')).toBe('rediss://user:***@db.example');
    expect(maskUrl('redis://127.0.0.1:6379')).toBe('redis://127.0.0.1:6379');
  });
});
