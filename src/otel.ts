/**
 * `redis-once/otel`: the diagnostics channels (diagnostics.ts) turned into OpenTelemetry spans and
 * metrics, through `@opentelemetry/api` and the providers the application registered. It listens only;
 * it sends nothing to Redis. The core never imports this file, so an application without OpenTelemetry
 * loads none of it.
 *
 * A call's span is opened at the channel's `start`, in the caller's active context, and ended at
 * `asyncEnd`. At `start` it also gives the call two things (see CallContext): its traceparent, which a
 * leader stores beside the value, and a `bind` that runs fn inside the span, so the work's own spans
 * nest under `redis-once.run`. A follower, here or in another process, ends with the leader's
 * traceparent and links its span to the leader's: one trace shows the run and everyone who waited.
 * @module redis-once/otel
 */
import {
  type Attributes,
  type Context,
  type Counter,
  type Histogram,
  type Meter,
  type MeterProvider,
  metrics,
  context as otelContext,
  type Span,
  type SpanContext,
  SpanStatusCode,
  type Tracer,
  type TracerProvider,
  trace,
  type UpDownCounter,
} from '@opentelemetry/api';
import pkg from '../package.json' with { type: 'json' };
import {
  type CallContext,
  type PointEvent,
  pointChannel,
  runChannel,
  type TracingChannel,
  waitChannel,
} from './diagnostics.js';

export interface OpenTelemetryOptions {
  /** Defaults to the global tracer provider (`trace.getTracerProvider()`). */
  tracerProvider?: TracerProvider;
  /** Defaults to the global meter provider (`metrics.getMeterProvider()`). */
  meterProvider?: MeterProvider;
}

/** The instruments, named as DESIGN.md ("Observability") and the README list them. */
interface Instruments {
  runDuration: Histogram;
  waitDuration: Histogram;
  attempts: Counter;
  takeovers: Counter;
  leasesLost: Counter;
  leasesHeld: UpDownCounter;
}

const SCOPE = 'redis-once';
// Seconds: from a cached answer (well under a millisecond) to a long migration.
const DURATION_BUCKETS = [0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

/**
 * Starts recording redis-once's calls as spans and metrics. Returns the function that stops it; calls
 * in flight then still end their spans. Enabling it twice records everything twice.
 */
export function enableOpenTelemetry(options: OpenTelemetryOptions = {}): () => void {
  const tracer = (options.tracerProvider ?? trace.getTracerProvider()).getTracer(SCOPE, pkg.version);
  const instruments = createInstruments(
    (options.meterProvider ?? metrics.getMeterProvider()).getMeter(SCOPE, pkg.version),
  );
  const unsubscribe = [
    traceCalls(runChannel, 'redis-once.run', tracer, instruments.runDuration),
    traceCalls(waitChannel, 'redis-once.wait', tracer, instruments.waitDuration),
    countLeases(instruments),
  ];
  let enabled = true;
  return () => {
    if (!enabled) return;
    enabled = false;
    for (const stop of unsubscribe) stop();
  };
}

function createInstruments(meter: Meter): Instruments {
  const seconds = (description: string) => ({
    description,
    unit: 's',
    advice: { explicitBucketBoundaries: DURATION_BUCKETS },
  });
  return {
    runDuration: meter.createHistogram(
      'redis_once.run.duration',
      seconds('Duration of run/runDetailed/wrap calls, from the call to its value or error.'),
    ),
    waitDuration: meter.createHistogram('redis_once.wait.duration', seconds('Duration of wait calls.')),
    attempts: meter.createCounter('redis_once.attempts', {
      description: 'Attempts this process began: it took a key, first or over.',
    }),
    takeovers: meter.createCounter('redis_once.takeovers', {
      description: 'Attempts this process began after an attempt that crashed, failed or lost its lease.',
    }),
    leasesLost: meter.createCounter('redis_once.leases.lost', {
      description:
        'Leases this process lost while its fn ran (expired, refused, taken by a forced reset, or given up by close()).',
    }),
    leasesHeld: meter.createUpDownCounter('redis_once.leases.held', {
      description: 'Leases this process holds now: fns running here.',
    }),
  };
}

/**
 * One span per call on `channel`, and its duration in `histogram`. Returns the function that stops it:
 * no new spans from then on, and the ones open end with their calls.
 */
function traceCalls(channel: TracingChannel, name: string, tracer: Tracer, histogram: Histogram): () => void {
  const calls = new Map<object, { span: Span; startedAt: number }>();
  let stopping = false;
  const handlers = {
    start(message: unknown) {
      const call = message as CallContext;
      const parent = otelContext.active();
      const span = tracer.startSpan(
        name,
        { attributes: { 'redis_once.key': call.key, 'redis_once.namespace': call.namespace } },
        parent,
      );
      calls.set(call, { span, startedAt: performance.now() });
      const spanContext = span.spanContext();
      if (trace.isSpanContextValid(spanContext)) call.traceparent = traceparent(spanContext);
      const inSpan: Context = trace.setSpan(parent, span);
      call.bind = (fn) => otelContext.bind(inSpan, fn);
    },
    error(message: unknown) {
      const call = message as CallContext;
      const entry = calls.get(call);
      if (!entry) return;
      const error = call.error;
      const type = errorType(error);
      entry.span.setAttribute('error.type', type);
      entry.span.setStatus({ code: SpanStatusCode.ERROR, message: errorMessage(error) });
      if (error instanceof Error) entry.span.recordException(error);
    },
    asyncEnd(message: unknown) {
      const call = message as CallContext;
      const entry = calls.get(call);
      if (!entry) return;
      calls.delete(call);
      // After this publish: a channel's listeners are not to change while it calls them.
      if (stopping && calls.size === 0) queueMicrotask(unsubscribe);
      const { span, startedAt } = entry;
      const result = call.result;
      const role = result?.role ?? (call.led ? 'leader' : 'follower');
      if (result) {
        span.setAttributes({
          'redis_once.role': result.role,
          'redis_once.fencing_token': result.fencingToken,
          'redis_once.attempt': result.attempt,
        });
        const leader = result.leaderTrace !== undefined ? spanContextOf(result.leaderTrace) : undefined;
        if (leader && result.role !== 'leader' && typeof span.addLink === 'function') {
          span.addLink({ context: leader, attributes: { 'redis_once.link': 'leader' } });
        }
      }
      span.end();
      const attributes: Attributes = {
        'redis_once.namespace': call.namespace,
        'redis_once.role': role,
        'redis_once.outcome': result ? 'done' : outcomeOf(call.error),
      };
      histogram.record((performance.now() - startedAt) / 1000, attributes);
    },
  };
  const unsubscribe = () => {
    channel.error.unsubscribe(handlers.error);
    channel.asyncEnd.unsubscribe(handlers.asyncEnd);
  };
  channel.start.subscribe(handlers.start);
  channel.error.subscribe(handlers.error);
  channel.asyncEnd.subscribe(handlers.asyncEnd);
  return () => {
    stopping = true;
    channel.start.unsubscribe(handlers.start);
    if (calls.size === 0) unsubscribe();
  };
}

/**
 * The lease counters, from the point events. Each attempt is counted down once, however it ends; once
 * stopped, no attempt is counted up, and the ones held are counted down as they end.
 */
function countLeases(instruments: Instruments): () => void {
  const held = new Set<string>();
  let stopping = false;
  const idOf = (event: PointMessage) => `${event.namespace}\u0000${event.key}\u0000${event.fencingToken}`;
  const begin = (takeover: boolean) => (message: unknown) => {
    const event = message as PointMessage;
    const attributes = { 'redis_once.namespace': event.namespace };
    instruments.attempts.add(1, attributes);
    if (takeover) instruments.takeovers.add(1, attributes);
    const id = idOf(event);
    if (held.has(id)) return;
    held.add(id);
    instruments.leasesHeld.add(1, attributes);
  };
  const end = (lost: boolean) => (message: unknown) => {
    const event = message as PointMessage;
    const attributes = { 'redis_once.namespace': event.namespace };
    if (lost)
      instruments.leasesLost.add(1, {
        ...attributes,
        'error.type': String(event.reason ?? 'LeaseLostError'),
      });
    if (held.delete(idOf(event))) instruments.leasesHeld.add(-1, attributes);
    if (stopping && held.size === 0) queueMicrotask(() => unsubscribe(ends));
  };
  type Subscriptions = Array<[PointEvent, (message: unknown) => void]>;
  const begins: Subscriptions = [
    ['lead', begin(false)],
    ['takeover', begin(true)],
  ];
  const ends: Subscriptions = [
    ['done', end(false)],
    ['fail', end(false)],
    ['lease-lost', end(true)],
  ];
  const unsubscribe = (subscriptions: Subscriptions) => {
    for (const [event, listener] of subscriptions) pointChannel(event).unsubscribe(listener);
  };
  for (const [event, listener] of [...begins, ...ends]) pointChannel(event).subscribe(listener);
  return () => {
    stopping = true;
    unsubscribe(begins);
    if (held.size === 0) unsubscribe(ends);
  };
}

interface PointMessage {
  key: string;
  namespace: string;
  fencingToken: number;
  reason?: string;
}

function traceparent({ traceId, spanId, traceFlags }: SpanContext): string {
  return `00-${traceId}-${spanId}-${(traceFlags & 0xff).toString(16).padStart(2, '0')}`;
}

/** The span context a traceparent names (the shape diagnostics.ts checked before it was stored). */
function spanContextOf(text: string): SpanContext | undefined {
  const [, traceId, spanId, flags] = text.split('-');
  if (!traceId || !spanId || !flags) return undefined;
  const context: SpanContext = { traceId, spanId, traceFlags: Number.parseInt(flags, 16), isRemote: true };
  return trace.isSpanContextValid(context) ? context : undefined;
}

function errorType(error: unknown): string {
  if (error instanceof Error) return error.name || error.constructor.name;
  return typeof error;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The outcome attribute of a call that ended without a value, from its error's name. */
function outcomeOf(error: unknown): string {
  switch (errorType(error)) {
    case 'OnceFailedError':
      return 'failed';
    case 'OnceTimeoutError':
      return 'timeout';
    case 'LeaseLostError':
      return 'lease_lost';
    case 'OnceAbortError':
      return 'aborted';
    case 'OnceClosedError':
      return 'closed';
    default:
      return 'error';
  }
}
