import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/**
 * Where a throwaway Redis can come from, for the tests and the demo: a `redis-server` binary
 * (`REDIS_SERVER_BIN`, else PATH), or Docker through testcontainers.
 */

/** The redis-server binary to run. An explicit REDIS_SERVER_BIN is kept even if wrong, so that using it
 * fails loudly instead of falling back. */
export function findRedisServer(): string | undefined {
  if (process.env.REDIS_SERVER_BIN) return process.env.REDIS_SERVER_BIN;
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  return dirs.map((dir) => join(dir, 'redis-server')).find(isExecutable);
}

export function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** True when a Docker engine answers. testcontainers is imported lazily: it is heavy, and only needed
 * where there is no binary. */
export async function dockerReachable(): Promise<boolean> {
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}
