import type { BenchConfig } from './config.js';
import type { Environment } from './env.js';
import type { Violation } from './scenarios/context.js';
import type { FanoutOutcome } from './scenarios/fanout.js';
import type { S1Result } from './scenarios/s1-fanout.js';
import type { S2Result } from './scenarios/s2-duration.js';
import type { S3Result } from './scenarios/s3-takeover.js';
import type { S4Result } from './scenarios/s4-cached.js';
import type { S5Result } from './scenarios/s5-throughput.js';
import { type Summary, summarize } from './stats.js';

/** Everything one bench run measured: what the report, the charts and the targets are made from. */
export interface Results {
  env: Environment;
  config: BenchConfig;
  wallMs: number;
  s1?: S1Result;
  s2?: S2Result;
  s3?: S3Result;
  s4?: S4Result;
  s5?: S5Result;
  violations: Violation[];
  /** A scenario that could not finish (the bench goes on with the next one). */
  errors: string[];
}

/** Median and spread of one number over the repetitions. */
export function over<T>(reps: readonly T[] | undefined, pick: (rep: T) => number): Summary {
  return summarize((reps ?? []).map(pick));
}

/** The S1 shape the targets speak of: the one with the most callers (1,000). */
export function largestShape(s1: S1Result | undefined) {
  if (!s1 || s1.shapes.length === 0) return undefined;
  return s1.shapes.reduce((a, b) => (b.callers > a.callers ? b : a));
}

export function renewals(outcome: FanoutOutcome, isRenewal: (kind: string) => boolean): number {
  let n = 0;
  for (const [kind, count] of Object.entries(outcome.requestsByKind)) if (isRenewal(kind)) n += count;
  return n;
}
