/**
 * Tiny synchronisation helpers for tests: a gate lets a test hold one party at a known point while
 * another one runs, so overlap is forced by construction instead of hoped for with sleeps.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface Gate<T> {
  /** Settles with the value passed to the first `open()`. */
  readonly promise: Promise<T>;
  /** Lets everyone waiting on `promise` through; later calls are ignored, like a promise's resolve. */
  open(value: T): void;
  readonly opened: boolean;
}

export function gate<T = void>(): Gate<T> {
  let resolve!: (value: T) => void;
  // Node 20 has no Promise.withResolvers.
  const promise = new Promise<T>((res) => {
    resolve = res;
  });
  let opened = false;
  return {
    promise,
    open(value: T) {
      if (opened) return;
      opened = true;
      resolve(value);
    },
    get opened() {
      return opened;
    },
  };
}

export interface WaitForOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** Named in the timeout error, so a failure says what never happened. */
  what?: string;
}

/**
 * Polls `cond` until it holds. Only for observing things that emit no event we can await (another
 * process, kernel state); the bound turns a hang into an error that names `what`.
 */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  { timeoutMs = 5000, intervalMs = 10, what = 'condition' }: WaitForOptions = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() >= deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}
