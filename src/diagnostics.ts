/**
 * What redis-once tells observers, through `node:diagnostics_channel` (the names are a contract, see
 * DESIGN.md "Observability"): a TracingChannel per call — `redis-once:run` for run/runDetailed/wrap,
 * `redis-once:wait` for wait — whose context carries `key` and `namespace` from `start` and, by
 * `asyncEnd`, `result: { role, fencingToken, attempt, waitedMs }` (the channel's `error` event on
 * failure); and point events on `redis-once:<event>`. Nothing is built or published while nobody
 * listens: every entry point asks `hasSubscribers` first.
 */
import diagnostics from 'node:diagnostics_channel';
import type { RunResult } from './flight.js';

export const runChannel = diagnostics.tracingChannel('redis-once:run');
export const waitChannel = diagnostics.tracingChannel('redis-once:wait');

export type TracingChannel = typeof runChannel;

/** True when anyone listens to any of `channel`'s events (one property read each). */
export function traced(channel: TracingChannel): boolean {
  return (
    channel.start.hasSubscribers ||
    channel.end.hasSubscribers ||
    channel.asyncStart.hasSubscribers ||
    channel.asyncEnd.hasSubscribers ||
    channel.error.hasSubscribers
  );
}

export interface CallContext {
  key: string;
  namespace: string;
  result?: { role: RunResult<unknown>['role']; fencingToken: number; attempt: number; waitedMs: number };
  error?: unknown;
}

/**
 * Runs one call under `channel`: start and end around its synchronous part, then error (if it
 * rejects), asyncStart and asyncEnd once it settles. Resolves as the call does.
 */
export function traceCall<T>(
  channel: TracingChannel,
  context: CallContext,
  call: () => Promise<RunResult<T>>,
): Promise<RunResult<T>> {
  let detailed: RunResult<T> | undefined;
  return channel
    .tracePromise(async () => {
      detailed = await call();
      const { role, fencingToken, attempt, waitedMs } = detailed;
      return { role, fencingToken, attempt, waitedMs };
    }, context)
    .then(() => detailed!);
}

/** The point events: one channel each, published only while someone listens. */
export type PointEvent = 'lead' | 'takeover' | 'renew' | 'lease-lost' | 'done' | 'fail' | 'reset';

const points = new Map<PointEvent, diagnostics.Channel>(
  (['lead', 'takeover', 'renew', 'lease-lost', 'done', 'fail', 'reset'] as const).map((name) => [
    name,
    diagnostics.channel(`redis-once:${name}`),
  ]),
);

/** True when `event` has a listener: check before building its message. */
export function listening(event: PointEvent): boolean {
  return points.get(event)!.hasSubscribers;
}

export function publish(event: PointEvent, message: Record<string, unknown>): void {
  const channel = points.get(event)!;
  if (channel.hasSubscribers) channel.publish(message);
}
