/**
 * With a `logger`, an instance checks the eviction policy once and warns when Redis can evict a lease
 * or a done state — the same finding as `redis-once doctor`. Without one, nothing is asked of Redis.
 */
import { randomUUID } from 'node:crypto';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOnce, OnceInputError, type OnceLogger } from '../../src/index.js';
import { type RedisServer, startRedis } from '../helpers/redis-server.js';

interface Line {
  level: keyof OnceLogger;
  fields: object;
  message: string;
}

/** A logger that keeps what it is told, and resolves `warned` at the first warning. */
function recorder() {
  const lines: Line[] = [];
  let warned!: () => void;
  const warning = new Promise<void>((resolve) => (warned = resolve));
  const log =
    (level: keyof OnceLogger) =>
    (fields: object, message: string): void => {
      lines.push({ level, fields, message });
      if (level === 'warn') warned();
    };
  const logger: OnceLogger = {
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
  };
  return { logger, lines, warning };
}

async function infoCalls(server: RedisServer): Promise<number> {
  const stats = await server.client().info('commandstats');
  return Number(/cmdstat_info:calls=(\d+)/.exec(stats)?.[1] ?? 0);
}

describe('the eviction warning', () => {
  let evicting: RedisServer;
  let safe: RedisServer;
  beforeAll(async () => {
    [evicting, safe] = await Promise.all([
      startRedis({ name: 'evict-lru', args: ['--maxmemory', '50mb', '--maxmemory-policy', 'allkeys-lru'] }),
      startRedis({ name: 'evict-none' }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([evicting.stop(), safe.stop()]);
  });

  it('warns once, naming the server and the policy, through the logger (a URL)', async () => {
    const { logger, lines, warning } = recorder();
    const once = createOnce({ redis: evicting.url, namespace: `ev-${randomUUID()}`, logger });
    try {
      expect(await once.run('k', () => 'v')).toBe('v');
      await warning;
      expect(lines.filter((l) => l.level === 'warn')).toEqual([
        {
          level: 'warn',
          fields: {
            server: `127.0.0.1:${evicting.port}`,
            maxmemoryPolicy: 'allkeys-lru',
            maxmemory: 50 * 1024 * 1024,
          },
          message: expect.stringMatching(
            /has maxmemory-policy allkeys-lru: when memory fills it can evict a lease/,
          ),
        },
      ]);
    } finally {
      await once.close();
    }
  });

  it('warns through a node-redis client too', async () => {
    const client = createClient({ url: evicting.url });
    await client.connect();
    const { logger, warning } = recorder();
    const once = createOnce({ redis: client, namespace: `ev-${randomUUID()}`, logger });
    try {
      await warning;
    } finally {
      await once.close();
      client.destroy();
    }
  });

  it('says nothing about a noeviction server', async () => {
    const { logger, lines } = recorder();
    const before = await infoCalls(safe);
    const once = createOnce({ redis: safe.url, namespace: `ev-${randomUUID()}`, logger });
    await once.run('k', () => 'v');
    // The check's INFO has been answered once the count rose (our own INFO here adds one more).
    await expect.poll(async () => (await infoCalls(safe)) - before).toBeGreaterThanOrEqual(2);
    await once.close();
    expect(lines.filter((l) => l.level === 'warn')).toEqual([]);
  });

  it('costs one INFO per master, and none when no logger is given', async () => {
    const spent = async (options: { logger?: OnceLogger }) => {
      const before = await infoCalls(evicting);
      const once = createOnce({ redis: evicting.url, namespace: `ev-${randomUUID()}`, ...options });
      await once.run('k', () => 'v');
      await once.close();
      return (await infoCalls(evicting)) - before;
    };
    const { logger, warning } = recorder();
    const withLogger = await spent({ logger });
    await warning;
    expect(withLogger - (await spent({}))).toBe(1);
  });

  it('refuses a logger without the four methods, naming what is missing', () => {
    expect(() => createOnce({ redis: safe.url, logger: { warn() {} } as never })).toThrow(OnceInputError);
    expect(() => createOnce({ redis: safe.url, logger: { warn() {} } as never })).toThrow(
      /missing: debug, info, error/,
    );
  });
});
