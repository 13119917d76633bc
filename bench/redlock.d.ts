/**
 * Types for the two redlock packages the bench compares. redlock@5.0.0-beta.2's package.json has an
 * `exports` map without a `types` condition, so NodeNext resolution cannot find its own index.d.ts;
 * redlock@4.2.0 (installed as `redlock4`) ships none. Only what bench/peers.ts uses.
 */
declare module 'redlock' {
  import type { EventEmitter } from 'node:events';
  import type { Redis } from 'ioredis';

  export class ExecutionError extends Error {}
  export default class Redlock extends EventEmitter {
    constructor(clients: Iterable<Redis>);
    using<T>(resources: string[], duration: number, routine: () => Promise<T>): Promise<T>;
  }
}

declare module 'redlock4' {
  import type { Redis } from 'ioredis';

  interface Lock {
    unlock(): Promise<void>;
    extend(ttl: number): Promise<Lock>;
  }
  export default class Redlock {
    static LockError: new (
      ...args: never[]
    ) => Error;
    constructor(clients: Redis[]);
    lock(resource: string, ttl: number): Promise<Lock>;
  }
}
