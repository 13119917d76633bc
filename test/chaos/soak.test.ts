/**
 * Longer runs of the fault scenarios, off by default: `REDIS_ONCE_SOAK=1 npx vitest run test/chaos/soak`.
 * Each round kills the leader mid-run or pauses it past its lease, and checks that the key became
 * done exactly once, by the survivor, with a higher fencing token.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createOnce } from '../../src/index.js';
import { canInjectFaults, type RedisServer, startRedis } from '../helpers/redis-server.js';
import { killAllWorkers, Worker } from '../helpers/worker.js';

const ROUNDS = Number(process.env.REDIS_ONCE_SOAK_ROUNDS ?? 10);

describe.skipIf(!process.env.REDIS_ONCE_SOAK || !canInjectFaults)(
  'soak: leader faults, round after round',
  () => {
    let redis: RedisServer;
    beforeAll(async () => {
      redis = await startRedis({ name: 'soak' });
    });
    afterEach(killAllWorkers);
    afterAll(async () => {
      await redis.stop();
    });

    for (const fault of ['SIGKILL', 'SIGSTOP'] as const) {
      it(
        `survives ${ROUNDS} rounds of ${fault} on the leader`,
        async () => {
          for (let round = 0; round < ROUNDS; round++) {
            const namespace = `soak-${randomUUID()}`;
            const base = { url: redis.url, namespace, key: 'k', callers: 5, leaseMs: 600 };
            const doomed = await Worker.start({
              ...base,
              nodeId: 'doomed',
              fnMs: 30_000,
              untilAborted: true,
            });
            doomed.go();
            const first = await doomed.next((e) => e.type === 'fn-start');
            const survivor = await Worker.start({ ...base, nodeId: 'survivor', fnMs: 50 });
            survivor.go();
            if (fault === 'SIGKILL') await doomed.kill();
            else doomed.signal('SIGSTOP');
            await survivor.finished();
            if (fault === 'SIGSTOP') {
              doomed.signal('SIGCONT');
              await doomed.finished();
              expect(doomed.errors().map((e) => e.name)).toEqual(['LeaseLostError']);
            }
            const takeover = survivor.fnStarts()[0]!;
            if (first.type !== 'fn-start') throw new Error('unreachable');
            expect(takeover.fencingToken).toBeGreaterThan(first.fencingToken);
            expect(survivor.fnStarts()).toHaveLength(1);
            const once = createOnce({ redis: redis.url, namespace });
            try {
              expect(await once.status('k')).toMatchObject({ state: 'done', owner: 'survivor', attempts: 2 });
            } finally {
              await once.close();
            }
          }
        },
        ROUNDS * 10_000,
      );
    }
  },
);
