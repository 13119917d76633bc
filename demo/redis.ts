/**
 * The demo's Redis: REDIS_URL if set; else a throwaway `redis-server` on a free loopback port; else,
 * where Docker runs, a `redis:7` container (testcontainers); else one sentence on how to get Redis.
 * Servers come from the launcher the tests and the benchmark use (scripts/redis-server.ts).
 */
import { LocalRedis, startRedisContainer } from '../scripts/redis-server.js';
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
  if (bin) {
    const server = await LocalRedis.start({ bin, name: 'demo' });
    return {
      url: server.url,
      description: `a throwaway redis-server on port ${server.port}`,
      stop: () => server.stop(),
    };
  }
  if (await dockerReachable()) {
    const container = await startRedisContainer([], 'demo');
    return {
      url: `redis://${container.getHost()}:${container.getMappedPort(6379)}`,
      description: 'a redis:7 container (testcontainers)',
      stop: async () => {
        await container.stop();
      },
    };
  }
  throw new NoRedisError(HOW_TO_GET_REDIS);
}
