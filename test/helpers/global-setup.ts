/**
 * vitest globalSetup: says once, at the top of the run, which Redis the tests use, even when a
 * filter selects no test that starts a server. Detection only (a `redis-server --version` at most),
 * no server is started here.
 */
import { announceRedisSource } from './redis-server.js';

export default async function setup(): Promise<() => Promise<void>> {
  // One id per test run, inherited by the workers: fault results of one run add up (reliability.ts).
  process.env.REDIS_ONCE_TEST_SESSION ??= String(Date.now());
  await announceRedisSource();
  return teardown;
}

/** Nothing to undo: every server belongs to the test file that started it and is stopped there. */
export async function teardown(): Promise<void> {}
