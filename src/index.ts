/**
 * redis-once: run an initialization exactly once across a cluster of Node.js processes, backed by Redis.
 * @module redis-once
 */
export type { OnceContext, PreviousAttempt, PreviousOutcome } from './context.js';
export type { RedisClient, RedisSpec } from './drivers/index.js';
export type { IoredisLike } from './drivers/ioredis.js';
export type { ClusterNode, NodeRedisClient, NodeRedisCluster } from './drivers/node-redis.js';
export type { ErrorSummary, OnceErrorCode, RedisRefusalReason } from './errors.js';
export {
  LeaseLostError,
  OnceAbortError,
  OnceBusyError,
  OnceClosedError,
  OnceError,
  OnceFailedError,
  OnceForeignValueError,
  OnceInputError,
  OnceReentrantError,
  OnceSerializationError,
  OnceTimeoutError,
  RedisUnavailableError,
} from './errors.js';
export type { OnceFn, Role, RunResult } from './flight.js';
export type { Once, OnceStatus } from './once.js';
export { createOnce } from './once.js';
export type { OnceLogger, OnceOptions, RunOptions, WaitOptions } from './options.js';
export { DEFAULTS } from './options.js';
