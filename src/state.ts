import type { ErrorSummary } from './errors.js';

/**
 * The vocabulary of a key's state in Redis, decoded. Nothing here decides anything: `decide.ts` reads
 * these snapshots, the scripts write them.
 */

/** How the attempt before a takeover ended (`ctx.previous.outcome`). */
export type PreviousOutcome = 'crashed' | 'failed' | 'lease-lost';

/** What a takeover tells fn about the attempt before it, so fn can repair what it left half-done. */
export interface PreviousAttempt {
  readonly owner: string | undefined;
  readonly fencingToken: number;
  readonly startedAt: number | undefined;
  readonly outcome: PreviousOutcome;
}

/** A key's state hash. `idle` means there is no state: never run, reset, or expired. */
export interface StoredState {
  status: 'idle' | 'running' | 'done' | 'failed';
  /** Fencing token of the latest attempt; 0 when idle. */
  token: number;
  owner: string | undefined;
  /** Attempts begun cluster-wide since the last reset. */
  attempts: number;
  /** Epoch milliseconds, Redis clock. */
  startedAt: number | undefined;
  finishedAt: number | undefined;
  /** The JSON text of the value; undefined when fn returned undefined, or not done. */
  valueJson: string | undefined;
  error: ErrorSummary | undefined;
  outcome: PreviousOutcome | undefined;
  /** The done state's expiry, when the leader set one (`doneTtlMs`). */
  doneTtlMs: number | undefined;
  /** The W3C traceparent of the span the leader's call ran in, when someone traced it. */
  trace: string | undefined;
}

/** One consistent look at a key: its state, its lease and its counter, read in one script. */
export interface Snapshot {
  state: StoredState;
  /** ms the lease has left; -2 when nobody holds it. */
  leasePttl: number;
  /** ms a done state has left; -1 when it does not expire (or is not done). */
  statePttl: number;
  /** The last fencing token issued for the key (kept across resets). */
  fence: number;
}

export const IDLE: StoredState = Object.freeze({
  status: 'idle',
  token: 0,
  owner: undefined,
  attempts: 0,
  startedAt: undefined,
  finishedAt: undefined,
  valueJson: undefined,
  error: undefined,
  outcome: undefined,
  doneTtlMs: undefined,
  trace: undefined,
});

/**
 * Decodes a state hash from HGETALL's flat `[field, value, …]` list: the reply of the read and claim
 * scripts, and the payload every state-changing script publishes.
 */
export function decodeState(flat: unknown): StoredState {
  return stateOf(fieldsOf(flat));
}

function fieldsOf(flat: unknown): Map<string, string> {
  const fields = new Map<string, string>();
  if (!Array.isArray(flat)) return fields;
  for (let i = 0; i + 1 < flat.length; i += 2) fields.set(String(flat[i]), String(flat[i + 1]));
  return fields;
}

function stateOf(fields: Map<string, string>): StoredState {
  const status = fields.get('status');
  if (status !== 'running' && status !== 'done' && status !== 'failed') return IDLE;
  return {
    status,
    token: toInt(fields.get('token')) ?? 0,
    owner: fields.get('owner'),
    attempts: toInt(fields.get('attempts')) ?? 0,
    startedAt: toInt(fields.get('startedAt')),
    finishedAt: toInt(fields.get('finishedAt')),
    valueJson: fields.get('value'),
    error: parseError(fields.get('error')),
    outcome: parseOutcome(fields.get('outcome')),
    doneTtlMs: toInt(fields.get('doneTtlMs')),
    trace: fields.get('trace'),
  };
}

/**
 * A message on a key's completion channel: the new state, flat, as JSON. A large value is left out of
 * the message (`valueOmitted`: read it from the state), so that no subscriber's output buffer limit is
 * ever reached by our messages.
 */
export interface StateMessage {
  state: StoredState;
  valueOmitted: boolean;
}

/** Decodes a completion-channel message; undefined when it is not ours. */
export function decodeMessage(message: string): StateMessage | undefined {
  try {
    // Lua's cjson encodes an empty table as `{}`: the state of a reset key.
    const parsed: unknown = message === '{}' ? [] : JSON.parse(message);
    if (!Array.isArray(parsed)) return undefined;
    const fields = fieldsOf(parsed);
    return { state: stateOf(fields), valueOmitted: fields.has('valueOmitted') };
  } catch {
    return undefined;
  }
}

function toInt(text: string | undefined): number | undefined {
  if (text === undefined || text === '') return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

function parseError(text: string | undefined): ErrorSummary | undefined {
  if (text === undefined) return undefined;
  try {
    const parsed = JSON.parse(text) as Partial<ErrorSummary>;
    return { name: String(parsed.name ?? 'Error'), message: String(parsed.message ?? '') };
  } catch {
    return { name: 'Error', message: text };
  }
}

function parseOutcome(text: string | undefined): PreviousOutcome | undefined {
  return text === 'failed' || text === 'lease-lost' || text === 'crashed' ? text : undefined;
}
