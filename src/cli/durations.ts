/**
 * Durations on the command line: `500ms`, `30s`, `10m`, `1h`, or a bare integer of milliseconds.
 * Decimals are fine when they come to whole milliseconds (`1.5s`).
 */

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** The longest duration a timer can wait (setTimeout fires at once past it); about 24.8 days. */
export const MAX_DURATION_MS = 2_147_483_647;

export const DURATION_HINT =
  'use a positive number with a unit, such as 500ms, 30s, 10m or 1h (a bare number is milliseconds)';

/** Milliseconds in `text`, or an Error whose message says what is wrong, in one sentence. */
export function parseDuration(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/i.exec(text);
  if (!match) throw new Error(`"${text}" is not a duration; ${DURATION_HINT}.`);
  const unit = (match[2] ?? 'ms').toLowerCase();
  const ms = Number(match[1]) * UNITS[unit]!;
  if (ms <= 0) throw new Error(`"${text}" is not a positive duration; ${DURATION_HINT}.`);
  if (!Number.isInteger(Number(ms.toFixed(6)))) {
    throw new Error(`"${text}" is not a whole number of milliseconds; ${DURATION_HINT}.`);
  }
  const whole = Math.round(ms);
  if (whole > MAX_DURATION_MS) {
    throw new Error(`"${text}" is longer than the longest supported duration (about 24 days).`);
  }
  return whole;
}

/** `1500` → `1.5 s`, `90_000` → `1 min 30 s`: for progress lines. */
export function formatDuration(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1_000).toFixed(ms < 10_000 ? 1 : 0)} s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.floor((ms % 60_000) / 1_000);
  if (minutes < 60) return seconds ? `${minutes} min ${seconds} s` : `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  return `${hours} h ${minutes % 60} min`;
}
