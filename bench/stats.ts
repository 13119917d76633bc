/** Small, dependency-free statistics: nearest-rank percentiles, medians, spreads. */

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function ascending(values: readonly number[]): number[] {
  return [...values].sort((a, b) => a - b);
}

/** The median of the repetitions, with their spread: the form every table cell takes. */
export interface Summary {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function summarize(values: readonly number[]): Summary {
  const finite = ascending(values.filter((value) => Number.isFinite(value)));
  if (finite.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, n: 0 };
  const mid = finite.length >> 1;
  const median = finite.length % 2 ? finite[mid]! : (finite[mid - 1]! + finite[mid]!) / 2;
  return { median, min: finite[0]!, max: finite[finite.length - 1]!, n: finite.length };
}

/** Points of an empirical CDF, thinned to at most `points` so a chart of 3,000 callers stays small. */
export function cdf(values: readonly number[], points = 400): Array<{ x: number; p: number }> {
  const sorted = ascending(values);
  const step = Math.max(1, Math.floor(sorted.length / points));
  const out: Array<{ x: number; p: number }> = [];
  for (let i = 0; i < sorted.length; i += step) out.push({ x: sorted[i]!, p: (i + 1) / sorted.length });
  if (sorted.length > 0) out.push({ x: sorted[sorted.length - 1]!, p: 1 });
  return out;
}
