import createDebug from 'debug';
import type { Driver } from './drivers/driver.js';
import type { OnceLogger } from './options.js';

const debug = createDebug('redis-once:eviction');

/** Policies that never evict our keys: only noeviction (a lease has a TTL, so volatile-* may drop it). */
const SAFE_POLICIES = new Set(['noeviction']);

/**
 * Warns once, through the caller's logger, when a Redis can evict our keys: a lease evicted lets a
 * second leader start, a done state evicted lets the work run again. One INFO per master at start; a
 * Redis that refuses INFO (a managed rule without @dangerous) is left unchecked, quietly.
 */
export async function warnOfEviction(drivers: readonly Driver[], logger: OnceLogger): Promise<void> {
  await Promise.all(
    drivers.map(async (driver) => {
      let info: string;
      try {
        info = await driver.serverInfo('memory');
      } catch (error) {
        debug(
          '%s: INFO memory not answered: %s',
          driver.label,
          error instanceof Error ? error.message : error,
        );
        return;
      }
      const policy = /^maxmemory_policy:(\S+)/m.exec(info)?.[1];
      if (policy === undefined || SAFE_POLICIES.has(policy)) return;
      const maxmemory = Number(/^maxmemory:(\d+)/m.exec(info)?.[1] ?? 0);
      logger.warn(
        { server: driver.label, maxmemoryPolicy: policy, maxmemory },
        `redis-once: Redis at ${driver.label} has maxmemory-policy ${policy}${maxmemory > 0 ? '' : ' (no maxmemory yet)'}: ` +
          'when memory fills it can evict a lease (two leaders at once) or a done state (the work runs again); ' +
          'set maxmemory-policy noeviction (`redis-once doctor` checks this and more)',
      );
    }),
  );
}
