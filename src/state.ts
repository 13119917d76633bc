import type { ErrorSummary } from './errors.js';

/** What a takeover tells fn about the attempt before it (`ctx.previous`). */
export type PreviousOutcome = 'crashed' | 'failed' | 'lease-lost';

/** A key's state hash, decoded. `idle` means there is no state (never run, reset, or expired). */
export interface StoredState {
  status: 'idle' | 'running' | 'done' | 'failed';
  /** Fencing token of the latest attempt; 0 when idle. */
  token: number;
  owner: string | undefined;
  /** Attempts begun cluster-wide since the last reset. */
  attempts: number;
  startedAt: number | undefined;
  finishedAt: number | undefined;
  /** The JSON text of the value; undefined when fn returned undefined, or not done. */
  valueJson: string | undefined;
  error: ErrorSummary | undefined;
  outcome: PreviousOutcome | undefined;
  /** The done state's expiry, when the leader set one (`doneTtlMs`). */
  doneTtlMs: number | undefined;
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
});

/**
 * Decodes a state hash from HGETALL's flat `[field, value, …]` list: the reply of the read script and
 * the payload every state-changing script publishes. Lua's cjson encodes an empty table as `{}`.
 */
export function decodeState(flat: unknown): StoredState {
  if (!Array.isArray(flat) || flat.length === 0) return IDLE;
  const fields = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) fields.set(String(flat[i]), String(flat[i + 1]));
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
  };
}

/** Decodes a message from a completion channel; undefined when it is not ours. */
export function decodeMessage(message: string): StoredState | undefined {
  try {
    const parsed: unknown = message === '{}' ? [] : JSON.parse(message);
    return Array.isArray(parsed) ? decodeState(parsed) : undefined;
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
