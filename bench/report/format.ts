import { PEERS, type PeerId } from '../peers/peer.js';
import type { FanoutOutcome } from '../scenarios/fanout.js';
import { HANDSHAKE } from '../scenarios/s4-cached.js';
import type { Summary } from '../stats.js';

/** How numbers, cells and tables are written in RESULTS.md and the summary. */

export type Fmt = (value: number) => string;

export const int: Fmt = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—');

export function ms(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return '—';
  if (value >= 1000) return `${(value / 1000).toFixed(2)} s`;
  if (value >= 100) return `${value.toFixed(0)} ms`;
  if (value >= 10) return `${value.toFixed(1)} ms`;
  return `${value.toFixed(2)} ms`;
}

/** "12.3 ms (10.1 ms–15.2 ms)": the median, then the spread of the repetitions. */
export function cell(s: Summary, fmt: Fmt): string {
  if (s.n === 0) return '—';
  if (s.n === 1 || s.min === s.max) return fmt(s.median);
  return `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`;
}

/** redis-once ÷ peer, written so that either direction reads at a glance: "1/120" or "300×". */
export function ratio(once: number, peer: number): string {
  if (!Number.isFinite(once) || !Number.isFinite(peer) || once <= 0 || peer <= 0) return '—';
  const r = once / peer;
  if (Math.abs(r - 1) < 0.05) return '≈1';
  if (r >= 1) return `${r >= 10 ? r.toFixed(0) : r.toFixed(1)}×`;
  const inv = 1 / r;
  return `1/${inv >= 10 ? inv.toFixed(0) : inv.toFixed(1)}`;
}

export function table(head: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

export function label(peer: PeerId): string {
  return PEERS[peer].label;
}

/** Every distinct failure message of a peer's repetitions, on one line of a table. */
export function failuresOf(outcomes: readonly { failures: string[] }[] | undefined): string {
  const all = [...new Set((outcomes ?? []).flatMap((o) => o.failures))];
  return all.join('; ').replaceAll('|', '\\|');
}

/** "HELLO (handshake), SUBSCRIBE, script redis-once read": what a process sent, by kind. */
export function sends(counts: Record<string, number>, requestLabel: (kind: string) => string): string {
  return Object.entries(counts)
    .map(
      ([kind, n]) =>
        `${requestLabel(kind)}${n > 1 ? ` ×${n}` : ''}${HANDSHAKE.has(kind) ? ' (handshake)' : ''}`,
    )
    .join(', ');
}

/** Where one run's requests and commands went, for the reader who wants to check a total. */
export function breakdown(
  what: string,
  outcome: FanoutOutcome,
  requestLabel: (kind: string) => string,
): string {
  const list = (counts: Record<string, number>, name: (k: string) => string) =>
    Object.entries(counts)
      .sort((a, b) => b[1] - a[1])
      .map(([k, n]) => `${name(k)} ${n}`)
      .join(', ');
  return (
    `<details><summary>${what}: ${outcome.requests} requests, ${outcome.commands} Redis commands</summary>\n\n` +
    `Requests: ${list(outcome.requestsByKind, requestLabel)}.\n\n` +
    `Redis commands: ${list(outcome.byCommand, (k) => k.toUpperCase())}.\n\n</details>`
  );
}
