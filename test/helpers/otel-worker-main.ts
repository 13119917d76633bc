/**
 * A process that leads one key with OpenTelemetry enabled (its own in-memory SDK) and reports its spans
 * over IPC: the other side of the cross-process trace-link test. Messages: → `leading` once fn runs,
 * ← `release` lets fn return, → `spans` once the run ended, then it exits.
 */
import { trace } from '@opentelemetry/api';
import { createOnce } from '../../src/index.js';
import { enableOpenTelemetry } from '../../src/otel.js';
import { spanRecord, testTelemetry } from './otel.js';

const { url, namespace, key } = JSON.parse(process.argv[2]!) as {
  url: string;
  namespace: string;
  key: string;
};
const telemetry = testTelemetry();
const disable = enableOpenTelemetry({
  tracerProvider: telemetry.tracerProvider,
  meterProvider: telemetry.meterProvider,
});
const once = createOnce({ redis: url, namespace });
const released = new Promise<void>((resolve) =>
  process.on('message', (m: { type: string }) => m.type === 'release' && resolve()),
);

const tracer = telemetry.tracerProvider.getTracer('migration');
await once.run(key, async () => {
  await tracer.startActiveSpan('migrate', async (span) => {
    process.send!({ type: 'leading', activeSpan: trace.getActiveSpan()?.spanContext().spanId });
    await released;
    span.end();
  });
  return 'migrated';
});
process.send!({ type: 'spans', spans: telemetry.spans().map(spanRecord) });
disable();
await once.close();
await telemetry.shutdown();
process.disconnect();
