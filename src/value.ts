import { OnceForeignValueError, OnceSerializationError } from './errors.js';

/**
 * fn's value travels to every waiter as JSON, so only values that survive JSON unchanged are accepted:
 * plain objects, arrays, strings, finite numbers, booleans and null (and `undefined` at the top level,
 * for an fn that returns nothing). Anything JSON would change silently — a Date becoming a string, a
 * Map becoming `{}`, NaN becoming null, a class instance losing its prototype — is refused here, so the
 * leader and its followers can never see different values. Refusing fails the attempt; it never
 * becomes `done`.
 *
 * Returns the JSON text, or undefined for an undefined value.
 */
export function encodeValue(value: unknown, key: string): string | undefined {
  if (value === undefined) return undefined;
  const problem = findProblem(value, 'value', new Set());
  if (problem) {
    throw new OnceSerializationError(
      `fn for "${key}" returned a value that does not survive JSON: ${problem}. ` +
        'Return plain objects, arrays, strings, finite numbers, booleans or null.',
      { key },
    );
  }
  const json = JSON.stringify(value);
  if (json.length > MAX_VALUE_BYTES / 3 && Buffer.byteLength(json, 'utf8') > MAX_VALUE_BYTES) {
    throw new OnceSerializationError(
      `fn for "${key}" returned a value of ${Buffer.byteLength(json, 'utf8')} bytes as JSON; at most ` +
        `${MAX_VALUE_BYTES} are stored. Store large data elsewhere and return a reference to it.`,
      { key },
    );
  }
  return json;
}

/**
 * The largest value (as JSON) a key can hold. Every follower gets it whatever its size up to this:
 * values over 16 KiB are not pushed through pub/sub (whose output buffers are limited) but read.
 */
export const MAX_VALUE_BYTES = 32 * 1024 * 1024;

/** The value stored as JSON text; undefined when fn returned undefined. */
export function decodeValue<T>(json: string | undefined): T {
  return (json === undefined ? undefined : JSON.parse(json)) as T;
}

/**
 * The value of a done state read from Redis: JSON we wrote, or a foreign value at the state key (a
 * typed error naming it, never a SyntaxError).
 */
export function decodeStoredValue(json: string | undefined, key: string, stateKey: string): unknown {
  try {
    return decodeValue(json);
  } catch {
    throw new OnceForeignValueError({
      key,
      redisKey: stateKey,
      detail: 'a done state whose value is not JSON',
    });
  }
}

function findProblem(value: unknown, path: string, ancestors: Set<object>): string | undefined {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined;
    case 'number':
      if (Object.is(value, -0)) return `${path} is -0 (JSON turns it into 0)`;
      return Number.isFinite(value) ? undefined : `${path} is ${value}`;
    case 'object':
      break;
    default:
      return `${path} is a ${typeof value}`;
  }
  if (value === null) return undefined;
  if (ancestors.has(value)) return `${path} is circular`;
  ancestors.add(value);
  try {
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        if (value[i] === undefined) return `${path}[${i}] is undefined (JSON turns it into null)`;
        const problem = findProblem(value[i], `${path}[${i}]`, ancestors);
        if (problem) return problem;
      }
      if (Object.keys(value).length !== value.length) return `${path} is an array with named properties`;
      return undefined;
    }
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      return `${path} is a ${value.constructor?.name ?? 'non-plain object'}`;
    }
    // Plain by prototype, yet not plain data (an `arguments` object, say).
    const tag = Object.prototype.toString.call(value);
    if (tag !== '[object Object]') return `${path} is ${tag}`;
    if (Object.getOwnPropertySymbols(value).length > 0) return `${path} has symbol keys (JSON drops them)`;
    for (const [name, child] of Object.entries(value)) {
      // JSON drops undefined properties; deep equality treats them as absent, so allow them.
      if (child === undefined) continue;
      const problem = findProblem(child, `${path}.${name}`, ancestors);
      if (problem) return problem;
    }
    return undefined;
  } finally {
    ancestors.delete(value);
  }
}
