import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOnce, type Once, RedisUnavailableError } from '../../src/index.js';
import { gate } from '../helpers/gate.js';
import { canInjectFaults, type RedisServer, startRedis } from '../helpers/redis-server.js';

describe.skipIf(!canInjectFaults)('a quorum of independent masters', () => {
  let masters: RedisServer[];
  beforeAll(async () => {
    masters = await Promise.all([1, 2, 3].map((i) => startRedis({ name: `quorum-${i}` })));
  });
  afterAll(async () => {
    await Promise.all(masters.map((master) => master.stop()));
  });

  function node(namespace: string, extra: { leaseMs?: number; redisTimeoutMs?: number } = {}): Once {
    return createOnce({
      quorum: masters.map((m) => m.url),
      namespace,
      leaseMs: 1500,
      redisTimeoutMs: 500,
      ...extra,
    });
  }

  it('runs fn once across nodes and writes the done state to every master', async () => {
    const namespace = `q-${randomUUID()}`;
    const [a, b] = [node(namespace), node(namespace)];
    try {
      let runs = 0;
      const release = gate();
      const fn = async () => {
        runs++;
        await release.promise;
        return { schema: 7 };
      };
      const calls = [a.run('m', fn), b.run('m', fn), a.run('m', fn), b.run('m', fn)];
      release.open();
      expect(await Promise.all(calls)).toEqual(Array(4).fill({ schema: 7 }));
      expect(runs).toBe(1);
      const statuses = () =>
        Promise.all(
          masters.map(async (master) => {
            const client = master.client();
            const status = await client.hget(`${namespace}:{m}:state`, 'status');
            client.disconnect();
            return status;
          }),
        );
      // A majority holds it. The third may not: with two nodes racing, its lease vote can go to the
      // loser, whose begin it then refuses; read-repair brings it forward if it is ever needed.
      expect((await statuses()).filter((status) => status === 'done').length).toBeGreaterThanOrEqual(2);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('keeps working with one master down, and refuses within the bound with two down', async () => {
    const namespace = `q-${randomUUID()}`;
    await masters[2]!.kill();
    const once = node(namespace);
    try {
      expect(await once.run('one-down', () => 'still fine')).toBe('still fine');
      expect(await once.status('one-down')).toMatchObject({ state: 'done', value: 'still fine' });

      await masters[1]!.kill();
      const t0 = performance.now();
      const error = await once.run('two-down', () => 'never').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RedisUnavailableError);
      expect(performance.now() - t0).toBeLessThan(2000);
    } finally {
      await once.close();
      for (const master of masters) if (master.pid === undefined) await master.restart();
    }
  });

  it('answers done when a majority holds it, whatever a lagging master says, and never takes over', async () => {
    // Two masters hold done with token 7; the third missed the complete and still says running.
    const namespace = `q-${randomUUID()}`;
    const state = `${namespace}:{k}:state`;
    const clients = masters.map((master) => master.client());
    try {
      await clients[0]!.hset(state, { status: 'done', token: '7', attempts: '1', value: '"majority"' });
      await clients[1]!.hset(state, { status: 'done', token: '7', attempts: '1', value: '"majority"' });
      await clients[2]!.hset(state, { status: 'running', token: '7', attempts: '1' });
      for (let i = 0; i < 10; i++) {
        const once = node(namespace);
        try {
          expect(await once.runDetailed('k', () => 'ran again')).toMatchObject({
            value: 'majority',
            role: 'cached',
          });
        } finally {
          await once.close();
        }
      }
      expect(await clients[2]!.hgetall(state)).toMatchObject({
        status: 'running',
        token: '7',
        attempts: '1',
      });
    } finally {
      for (const client of clients) client.disconnect();
    }
  });

  it('copies a done state to a master that lost it, even with another master down (read-repair)', async () => {
    const namespace = `q-${randomUUID()}`;
    const state = `${namespace}:{k}:state`;
    const clients = masters.map((master) => master.client());
    try {
      // Only master 0 still holds the completion (1 wiped, and 2 is about to go down).
      await clients[0]!.hset(state, { status: 'done', token: '9', attempts: '1', value: '"kept"' });
      await clients[1]!.hset(state, { status: 'running', token: '9', attempts: '1' });
      clients[2]!.disconnect();
      await masters[2]!.kill();
      const once = node(namespace);
      try {
        expect(await once.runDetailed('k', () => 'ran again')).toMatchObject({
          value: 'kept',
          role: 'cached',
        });
      } finally {
        await once.close();
      }
      expect(await clients[1]!.hgetall(state)).toMatchObject({ status: 'done', token: '9', value: '"kept"' });
    } finally {
      for (const client of clients) client.disconnect();
      await masters[2]!.restart();
    }
  });

  it('never undoes a reset with read-repair, even when one master missed the reset', async () => {
    const namespace = `q-${randomUUID()}`;
    const state = `${namespace}:{k}:state`;
    const fence = `${namespace}:{k}:fence`;
    const clients = masters.map((master) => master.client());
    try {
      // All three saw attempt 9 complete; masters 1 and 2 were reset since, master 0 missed the reset.
      await clients[0]!.hset(state, { status: 'done', token: '9', attempts: '1', value: '"old"' });
      for (const client of clients) await client.set(fence, '9');
      const once = node(namespace);
      try {
        expect(await once.runDetailed('k', () => 'new')).toMatchObject({ value: 'new', role: 'leader' });
      } finally {
        await once.close();
      }
    } finally {
      for (const client of clients) client.disconnect();
    }
  });

  it('reconciles a master that lost its data by the highest fencing token', async () => {
    const namespace = `q-${randomUUID()}`;
    const first = node(namespace);
    const tokens: number[] = [];
    try {
      await first.run('k', (ctx) => tokens.push(ctx.fencingToken));
      // One master forgets everything: a majority still says done.
      await masters[0]!.kill();
      await masters[0]!.restart();
      expect(await first.status('k')).toMatchObject({ state: 'done' });
      await first.reset('k');
      await first.run('k', (ctx) => tokens.push(ctx.fencingToken));
      expect(tokens[1]).toBeGreaterThan(tokens[0]!);
    } finally {
      await first.close();
    }
  });
});
