/**
 * The randomized soak: several processes walk many keys at once while faults are injected at random
 * times — a process SIGKILLed (and replaced) or SIGSTOPped past its lease, its network black-holed,
 * slowed or cut — and every fn writes to a ledger that accepts only the highest fencing token seen for
 * its key. At the end: every caller that got a value for a key got the one value the key became done
 * with; no stale write was accepted; every caller settled; no unhandled rejection; every process
 * exited by itself.
 *
 * About 60 s by default (at least 200 faults); REDIS_ONCE_SOAK_MS for longer. The seed is printed;
 * REDIS_ONCE_SOAK_SEED=<seed> replays a run's choices (the instants, and so which process a fault
 * finds down, depend on timing).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { randomInt, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOnce } from '../../src/index.js';
import { type Ledger, startLedger } from '../helpers/ledger.js';
import { type FaultProxy, startProxy } from '../helpers/proxy.js';
import { seededRandom } from '../helpers/random.js';
import { canInjectFaults, type RedisServer, startRedis } from '../helpers/redis-server.js';
import { recordFault } from '../helpers/reliability.js';
import type { SoakEvent, SoakWorkerConfig } from '../helpers/soak-worker-main.js';

const SOAK_MS = Number(process.env.REDIS_ONCE_SOAK_MS ?? 60_000);
const SEED = Number(process.env.REDIS_ONCE_SOAK_SEED ?? randomInt(2 ** 31));
const PROCESSES = 4;
const CALLERS = 3;
const KEYS = 5_000;
const LEASE_MS = 800;
/** One fault every this many ms on average, on a process that is not down: 60 s gives about 250. */
const FAULT_EVERY_MS = 220;

const main = fileURLToPath(new URL('../helpers/soak-worker-main.ts', import.meta.url));
const registerLua = fileURLToPath(new URL('../../scripts/register-lua.mjs', import.meta.url));

interface Slot {
  proxy: FaultProxy;
  child: ChildProcess;
  stopped: boolean;
  killed: boolean;
  exited: Promise<number | null>;
}

interface KeyReport {
  values: number[];
  errors: string[];
}

describe.skipIf(!canInjectFaults)('randomized soak', () => {
  let redis: RedisServer;
  let ledger: Ledger;
  beforeAll(async () => {
    [redis, ledger] = await Promise.all([startRedis({ name: 'random-soak' }), startLedger()]);
  });
  afterAll(async () => {
    await Promise.all([redis.stop(), ledger.close()]);
  });

  it(
    `keeps every key done once, with the value every caller gets, under random faults (seed ${SEED})`,
    async () => {
      console.log(`[random soak] seed ${SEED} (replay: REDIS_ONCE_SOAK_SEED=${SEED}), ${SOAK_MS} ms`);
      const rand = seededRandom(SEED);
      const namespace = `soak-${randomUUID()}`;
      const keys = Array.from({ length: KEYS }, (_, i) => `key-${i}`);
      const reports = new Map<string, KeyReport>();
      const unhandled: string[] = [];
      let fnEnds = 0;
      let worstKeyMs = 0;
      let spawned = 0;

      const spawnWorker = async (slot: number, proxy: FaultProxy): Promise<Slot> => {
        const config: SoakWorkerConfig = {
          url: proxy.url,
          namespace,
          nodeId: `p${slot}-${spawned++}`,
          keys,
          seed: Math.floor(rand() * 2 ** 31),
          callers: CALLERS,
          leaseMs: LEASE_MS,
          redisTimeoutMs: 1000,
          waitTimeoutMs: 20_000,
          ledgerUrl: ledger.url,
        };
        const child = fork(main, [JSON.stringify(config)], {
          execArgv: ['--import', 'tsx', '--import', registerLua],
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        });
        const exited = once(child, 'exit').then(([code]) => code as number | null);
        child.on('message', (event: SoakEvent) => {
          if (event.type === 'unhandled') unhandled.push(event.message);
          if (event.type !== 'key') return;
          const report = reports.get(event.key) ?? { values: [], errors: [] };
          report.values.push(...event.values);
          report.errors.push(...event.errors);
          reports.set(event.key, report);
          fnEnds += event.fnEnds;
          worstKeyMs = Math.max(worstKeyMs, event.ms);
        });
        await new Promise<void>((resolve) =>
          child.on('message', (event: SoakEvent) => event.type === 'ready' && resolve()),
        );
        child.send({ type: 'go' });
        return { proxy, child, stopped: false, killed: false, exited };
      };

      const slots: Slot[] = [];
      for (let i = 0; i < PROCESSES; i++) slots.push(await spawnWorker(i, await startProxy(redis)));
      const faults: Record<string, number> = {};
      const pending = new Set<Promise<unknown>>();
      const later = (ms: number, action: () => unknown) => {
        const done = new Promise((resolve) => setTimeout(resolve, ms)).then(action);
        pending.add(done);
        void done.finally(() => pending.delete(done));
      };

      const deadline = performance.now() + SOAK_MS;
      const minimum = SOAK_MS >= 60_000 ? 200 : 0;
      const injected = () => Object.values(faults).reduce((a, b) => a + b, 0);
      // The time, and (in a full run) at least 200 faults even on a machine slowed by other work.
      while (performance.now() < deadline || injected() < minimum) {
        await new Promise((resolve) => setTimeout(resolve, Math.floor(rand() * 2 * FAULT_EVERY_MS)));
        const index = Math.floor(rand() * slots.length);
        const slot = slots[index]!;
        if (slot.stopped || slot.killed) continue;
        const kind = ['kill', 'stop', 'blackhole', 'delay', 'cut'][Math.floor(rand() * 5)]!;
        faults[kind] = (faults[kind] ?? 0) + 1;
        const ms = 200 + Math.floor(rand() * 1300);
        switch (kind) {
          case 'kill':
            // Replaced by a new process, which starts while the faults go on.
            slot.killed = true;
            slot.child.kill('SIGKILL');
            later(0, async () => {
              await slot.exited;
              slots[index] = await spawnWorker(index, slot.proxy);
            });
            break;
          case 'stop':
            slot.stopped = true;
            slot.child.kill('SIGSTOP');
            later(ms, () => {
              slot.child.kill('SIGCONT');
              slot.stopped = false;
            });
            break;
          case 'blackhole':
          case 'delay':
            slot.proxy.set(
              kind === 'blackhole' ? { kind: 'blackhole' } : { kind: 'delay', ms: 50 + (ms % 250) },
            );
            later(ms, () => slot.proxy.set({ kind: 'pass' }));
            break;
          case 'cut':
            slot.proxy.cut();
            break;
        }
      }
      // Faults end; every process finishes its key and stops; then each must exit by itself.
      await Promise.all(pending);
      for (const slot of slots) slot.proxy.set({ kind: 'pass' });
      await Promise.all(
        slots.map(async (slot) => {
          const stopped = new Promise<void>((resolve) =>
            slot.child.on('message', (event: SoakEvent) => event.type === 'stopped' && resolve()),
          );
          slot.child.send({ type: 'stop' });
          await stopped;
          slot.child.send({ type: 'exit' });
        }),
      );
      const exits = await Promise.all(
        slots.map((slot) =>
          Promise.race([
            slot.exited,
            new Promise<string>((resolve) => setTimeout(() => resolve('still running after 10 s'), 10_000)),
          ]),
        ),
      );
      for (const slot of slots) if (slot.child.exitCode === null) slot.child.kill('SIGKILL');
      await Promise.all(slots.map((slot) => slot.proxy.close()));

      // The truth, from Redis: the token each touched key is done with.
      const reader = createOnce({ redis: redis.url, namespace });
      const doneToken = new Map<string, number>();
      try {
        for (const key of reports.keys()) {
          const status = await reader.status(key);
          if (status.state === 'done') doneToken.set(key, status.fencingToken!);
        }
      } finally {
        await reader.close();
      }

      const faultCount = injected();
      const wrong: string[] = [];
      let callers = 0;
      let settled = 0;
      for (const [key, report] of reports) {
        callers += report.values.length + report.errors.length;
        settled += report.values.length + report.errors.length;
        const token = doneToken.get(key);
        // Every value a caller got is the one the key is done with: it became done once.
        for (const value of report.values)
          if (value !== token) wrong.push(`${key}: got ${value}, done with ${token}`);
        // The ledger's last accepted write for a done key is the attempt that completed it (every fn
        // writes before it returns).
        const accepted = ledger.accepted(`${namespace}:${key}`);
        if (token !== undefined && accepted.at(-1)?.token !== token) {
          wrong.push(`${key}: last accepted ledger write ${accepted.at(-1)?.token}, done with ${token}`);
        }
      }
      const errorNames = new Set([...reports.values()].flatMap((r) => r.errors.map((e) => e.split(':')[0]!)));
      console.log(
        `[random soak] seed ${SEED}: ${faultCount} faults ${JSON.stringify(faults)}, ${reports.size} keys, ${doneToken.size} done, ${callers} callers, ${fnEnds} fn runs, ${ledger.refused().length} stale writes refused, errors ${JSON.stringify([...errorNames])}`,
      );

      expect(wrong, `seed ${SEED}`).toEqual([]);
      expect(unhandled, `seed ${SEED}`).toEqual([]);
      expect(exits, `seed ${SEED}: every process exits by itself`).toEqual(slots.map(() => 0));
      const untyped = [...reports.values()]
        .flatMap((r) => r.errors)
        .filter((e) => !/^(Once|Redis|Lease)\w*Error:/.test(e));
      expect(untyped, `seed ${SEED}: only typed errors`).toEqual([]);
      if (SOAK_MS >= 60_000) {
        expect(faultCount).toBeGreaterThanOrEqual(200);
        // The faults hit keys others were waiting on: some attempts were taken over.
        expect(fnEnds).toBeGreaterThan(doneToken.size);
      }
      expect(doneToken.size).toBeGreaterThan(0);
      recordFault({
        id: 'random-soak',
        runs: reports.size,
        callers,
        executions: fnEnds,
        done: doneToken.size,
        staleRefused: ledger.refused().length,
        settled,
        worstSettleMs: worstKeyMs,
      });
    },
    SOAK_MS + 120_000,
  );
});
