/**
 * A child process that calls `run` against a Redis that is not there, prints what it got as JSON, and
 * closes. The parent checks the error, the time it took, and that the process exits by itself.
 */
import { createOnce } from '../../src/index.js';

const url = process.argv[2]!;
const once = createOnce({ redis: url, redisTimeoutMs: 500 });
const t0 = performance.now();
try {
  await once.run('k', () => 'never');
  console.log(JSON.stringify({ ok: true }));
} catch (error) {
  console.log(JSON.stringify({ name: (error as Error).name, ms: performance.now() - t0 }));
}
await once.close();
