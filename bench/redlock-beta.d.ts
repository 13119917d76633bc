/**
 * Types for redlock@5.0.0-beta.2, whose package.json has an `exports` map without a `types`
 * condition, so TypeScript's NodeNext resolution cannot find its own dist/index.d.ts. This is the
 * part of that file the bench uses, copied.
 */
declare module 'redlock' {
  import type { EventEmitter } from 'node:events';
  import type { Cluster, Redis } from 'ioredis';

  export interface Settings {
    readonly driftFactor: number;
    readonly retryCount: number;
    readonly retryDelay: number;
    readonly retryJitter: number;
    readonly automaticExtensionThreshold: number;
  }
  export class ResourceLockedError extends Error {}
  export class ExecutionError extends Error {}
  export type RedlockAbortSignal = AbortSignal & { error?: Error };

  export default class Redlock extends EventEmitter {
    constructor(clients: Iterable<Redis | Cluster>, settings?: Partial<Settings>);
    readonly scripts: Record<
      'acquireScript' | 'extendScript' | 'releaseScript',
      { value: string; hash: string }
    >;
    using<T>(
      resources: string[],
      duration: number,
      routine: (signal: RedlockAbortSignal) => Promise<T>,
    ): Promise<T>;
  }
}
