/**
 * Wall-clock milliseconds with sub-millisecond resolution.
 *
 * Release latency subtracts a time taken in one process (the leader's fn finished) from a time taken
 * in another (a caller resolved). `performance.now()` alone is per-process; adding `timeOrigin` puts
 * every process of this machine on the one system clock, and keeps the microseconds Date.now() drops.
 */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
