/**
 * What redis-once tells observers, through `node:diagnostics_channel` (the names are a contract, see
 * DESIGN.md "Observability"): a TracingChannel per call — `redis-once:run` for run/runDetailed/wrap,
 * `redis-once:wait` for wait — whose context carries `key` and `namespace` from `start` and, by
 * `asyncEnd`, `result: { role, fencingToken, attempt, waitedMs }` (the channel's `error` event on
 * failure); and point events on `redis-once:<event>`. Nothing is built or published while nobody
 * listens: every entry point asks `hasSubscribers` first.
 *
 * A listener may write two things into a call's context at `start` (redis-once/otel does): `traceparent`,
 * the W3C traceparent of the span it opened, which a leader stores with its value, so each follower's
 * context ends with it as `result.leaderTrace`; and `bind`, to run fn inside the listener's own
 * context. Both come from code in the same process; the traceparent is still checked for its shape
 * before it is stored.
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
  /** Set by a listener at `start`: the W3C traceparent of the span it opened for this call. */
  traceparent?: string;
  /** Set by a listener at `start`: returns fn bound to the listener's context. */
  bind?: <F extends (...args: never[]) => unknown>(fn: F) => F;
  /** Set by us once this call's fn started: the call led (also when it then failed). */
  led?: boolean;
  result?: {
    role: RunResult<unknown>['role'];
    fencingToken: number;
    attempt: number;
    waitedMs: number;
    /** The traceparent the leader's call stored with the value, when it was traced. */
    leaderTrace?: string;
  };
  error?: unknown;
}

// version-traceId-spanId-flags, lower-case hex (https://www.w3.org/TR/trace-context/#traceparent-header);
// version ff and all-zero ids are invalid there.
const TRACEPARENT = /^(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$/;

/** The traceparent a listener gave the call, if it is a valid one. */
export function traceparentOf(context: CallContext): string | undefined {
  const { traceparent } = context;
  return typeof traceparent === 'string' && TRACEPARENT.test(traceparent) ? traceparent : undefined;
}

/**
 * fn for a traced call: bound as the listener asked, and marking the context `led` when it runs (so a
 * call that fails is known to have led). Bad input stays as it came, for the checks to refuse.
 */
export function tracedFn<F>(context: CallContext, fn: F): F {
  if (typeof fn !== 'function') return fn;
  const plain = fn as (ctx: never) => unknown;
  const bound = typeof context.bind === 'function' ? context.bind(plain) : plain;
  return ((ctx: never) => {
    context.led = true;
    return bound(ctx);
  }) as F;
}

/**
 * Runs one call under `channel`: start and end around its synchronous part, then error (if it
 * rejects), asyncStart and asyncEnd once it settles. Resolves as the call does.
 */
export function traceCall<T>(
  channel: TracingChannel,
  context: CallContext,
  call: (context: CallContext) => Promise<RunResult<T>>,
): Promise<RunResult<T>> {
  let detailed: RunResult<T> | undefined;
  return channel
    .tracePromise(async () => {
      detailed = await call(context);
      const { role, fencingToken, attempt, waitedMs, leaderTrace } = detailed;
      const result: NonNullable<CallContext['result']> = { role, fencingToken, attempt, waitedMs };
      if (leaderTrace !== undefined) result.leaderTrace = leaderTrace;
      return result;
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

/** The channel of one point event (`redis-once:<event>`). */
export function pointChannel(event: PointEvent): diagnostics.Channel {
  return points.get(event)!;
}

/** True when `event` has a listener: check before building its message. */
export function listening(event: PointEvent): boolean {
  return points.get(event)!.hasSubscribers;
}

export function publish(event: PointEvent, message: Record<string, unknown>): void {
  const channel = points.get(event)!;
  if (channel.hasSubscribers) channel.publish(message);
}
