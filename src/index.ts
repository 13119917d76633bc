export type { OnceContext, PreviousAttempt, Role } from './coordinator.js';
export type { ErrorSummary, OnceErrorCode } from './errors.js';
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
export type { Once, OnceFn, OnceStatus, RunResult } from './once.js';
export { createOnce } from './once.js';
export type { OnceOptions, RunOptions } from './options.js';
export { DEFAULTS } from './options.js';
export type { RedisClient, RedisSpec } from './redis-node.js';
