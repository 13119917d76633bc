import createDebug from 'debug';
import type { Driver } from './drivers/driver.js';
import { RedisUnavailableError } from './errors.js';
import type { OnceLogger } from './options.js';

const debug = createDebug('redis-once:eviction');

/** Policies that never evict our keys: only noeviction (a lease has a TTL, so volatile-* may drop it). */
const SAFE_POLICIES = new Set(['noeviction']);

/**
 * Warns once, through the caller's logger, when a Redis can evict our keys: a lease evicted lets a
 * second leader start, a done state evicted lets the work run again. One INFO per master at start. A
 * Redis whose ACL user may not run INFO (the rule managed services hand out, `-@dangerous`) is left
 * unchecked, and the logger told so once (at info: nothing is wrong that we know of); any other
 * failure (Redis down) is for the calls to report.
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
        if (error instanceof RedisUnavailableError && error.reason === 'noperm') {
          logger.info(
            { server: driver.label, check: 'eviction', result: 'unknown' },
            `redis-once: the eviction policy of Redis at ${driver.label} is unknown: this ACL user may not run INFO; ` +
              'make sure maxmemory-policy is noeviction (a lease or done state evicted lets the work run twice), ' +
              'or grant +info for this check',
          );
        }
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
