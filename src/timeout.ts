/**
 * The delay, in whole milliseconds, until `at` (a performance.now() instant). Node keeps one timer list
 * per distinct delay, so fractional delays would each make a list of their own; a timer that fires a
 * fraction early is looked at again by whoever set it.
 */
export function delayUntil(at: number): number {
  return Math.max(0, Math.floor(at - performance.now()));
}

/**
 * Settles like `promise` (its rejection passed through `onError`, if given), or rejects with
 * `onTimeout()` after `ms`: every wait on Redis is bounded this way, whoever owns the client. The timer
 * is unref'd (it never keeps a process alive by itself) and cleared as soon as `promise` settles; a
 * `promise` that loses the race is left to settle unobserved.
 */
export function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  onTimeout: () => Error,
  onError?: (error: unknown) => unknown,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => afterPendingIo(() => settled || reject(onTimeout())), ms);
    timer.unref();
    promise.then(
      (value) => {
        settled = true;
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        settled = true;
        clearTimeout(timer);
        reject(onError ? onError(error) : error);
      },
    );
  });
}

/**
 * Runs `verdict` once the replies already in the sockets have been read. After the event loop was
 * blocked past a bound, its timer runs before the I/O that waited meanwhile; an answer that came in time
 * must not be counted as none. (`setImmediate` runs after the loop's poll phase.)
 */
export function afterPendingIo(verdict: () => void): void {
  setImmediate(verdict);
}
