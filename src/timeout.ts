/**
 * Settles like `promise`, or rejects with `onTimeout()` after `ms`: every wait on Redis is bounded this
 * way, whoever owns the client. The timer is unref'd (it never keeps a process alive by itself) and
 * cleared as soon as `promise` settles; a `promise` that loses the race is left to settle unobserved.
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(onTimeout()), ms);
    timer.unref();
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
