import { RedisUnavailableError } from '../errors.js';
import { refusalReason } from './refusal-reason.js';

/**
 * A client's error, as a cause we can hand on: its name, its message and Node's code (such as
 * `SELF_SIGNED_CERT_IN_CHAIN`: a constant, never a secret), nothing else. Clients attach more: ioredis
 * puts the failed command on the error (for HELLO or AUTH, the password among its arguments), Node's
 * TLS errors carry the whole peer certificate, Node's URL errors the URL as it was given.
 */
export function safeCause(error: unknown): Error {
  if (error instanceof RedisUnavailableError) return error;
  const copy = new Error(error instanceof Error ? error.message : String(error));
  copy.name = error instanceof Error ? error.name : 'Error';
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^[A-Z][A-Z0-9_]{0,63}$/.test(code)) {
    Object.defineProperty(copy, 'code', { value: code, enumerable: true });
  }
  return copy;
}

/** The error inside `error` that says what was refused (a Cluster's last node error, say), or itself. */
export function refusingError(error: unknown): unknown {
  const nested = error as { lastNodeError?: unknown; errors?: unknown; cause?: unknown } | null;
  if (typeof nested !== 'object' || nested === null) return error;
  for (const inner of [nested.lastNodeError, ...(Array.isArray(nested.errors) ? nested.errors : [])]) {
    if (refusalReason(inner)) return refusingError(inner);
  }
  return error;
}
