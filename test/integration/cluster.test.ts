/**
 * Redis Cluster through every client a caller may pass (test/helpers/clients.ts): one real 3-master
 * cluster for the file, a fresh namespace per test. Followers wait on sharded pub/sub, on their own
 * subscriber connection to the master of their key's slot; these tests cut that connection and move
 * that slot while followers wait, and check they still learn of the completion within moments.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createOnce, type Once, OnceBusyError, OnceFailedError, type OnceOptions } from '../../src/index.js';
import { CLIENT_KINDS, type Connected, connectCluster } from '../helpers/clients.js';
import { gate, waitFor } from '../helpers/gate.js';
import { canInjectFaults, type RedisServer } from '../helpers/redis-server.js';
import { recordFault } from '../helpers/reliability.js';
import { startCluster } from '../helpers/topologies.js';

/** How soon a follower must hear of a completion it could not be sent (its subscription was cut). */
const WAKE_BOUND_MS = 2_000;

describe.skipIf(!canInjectFaults)('Redis Cluster', () => {
  let nodes: RedisServer[];
  /** One plain (non-cluster) admin connection per node, for CLUSTER, PUBSUB and CLIENT commands. */
  let admins: Map<RedisServer, ReturnType<RedisServer['client']>>;

  beforeAll(async () => {
    nodes = await startCluster('cluster');
    admins = new Map(nodes.map((node) => [node, node.client()]));
  }, 30_000);
  afterAll(async () => {
    await Promise.all(nodes.map((node) => node.stop()));
  });

  const seeds = () => nodes.map((n) => ({ host: n.host, port: n.port }));
  const admin = (node: RedisServer) => admins.get(node)!;

  /** The master serving `slot`, as the cluster says (every master agrees after a SETSLOT NODE on all). */
  async function ownerOf(slot: number): Promise<RedisServer> {
    const ranges = (await admin(nodes[0]!).call('CLUSTER', 'SLOTS')) as Array<
      [number, number, [string, number]]
    >;
    const range = ranges.find(([start, end]) => start <= slot && slot <= end);
    const owner = nodes.find((node) => node.port === Number(range?.[2][1]));
    if (!owner) throw new Error(`no master serves slot ${slot}`);
    return owner;
  }

  async function slotOf(name: string): Promise<number> {
    return Number(await admin(nodes[0]!).call('CLUSTER', 'KEYSLOT', name));
  }

  /** Subscribers of a sharded channel on one node (PUBSUB SHARDNUMSUB answers for that node only). */
  async function shardSubscribers(node: RedisServer, channel: string): Promise<number> {
    const reply = (await admin(node).call('PUBSUB', 'SHARDNUMSUB', channel)) as [string, number];
    return Number(reply[1]);
  }

  /**
   * Moves `slot` from its master to `target` the way redis-cli --cluster reshard does: IMPORTING on the
   * target, MIGRATING on the source, MIGRATE every key of the slot, then SETSLOT NODE on every master
   * (the target first). The source then sends its sharded subscribers of the slot an SUNSUBSCRIBE.
   */
  async function migrateSlot(slot: number, target: RedisServer): Promise<string[]> {
    const source = await ownerOf(slot);
    if (source === target) throw new Error(`slot ${slot} is already served by ${target.name}`);
    const idOf = async (node: RedisServer) => String(await admin(node).call('CLUSTER', 'MYID'));
    const [sourceId, targetId] = await Promise.all([idOf(source), idOf(target)]);
    await admin(target).call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', sourceId);
    await admin(source).call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', targetId);
    const moved: string[] = [];
    for (;;) {
      const keys = (await admin(source).call('CLUSTER', 'GETKEYSINSLOT', slot, 100)) as string[];
      if (keys.length === 0) break;
      await admin(source).call('MIGRATE', target.host, target.port, '', 0, 5_000, 'KEYS', ...keys);
      moved.push(...keys);
    }
    const others = nodes.filter((node) => node !== source && node !== target);
    for (const node of [target, source, ...others]) {
      await admin(node).call('CLUSTER', 'SETSLOT', slot, 'NODE', targetId);
    }
    return moved;
  }

  describe.each(CLIENT_KINDS)('through a %s client', (kind) => {
    let namespace: string;
    const onces: Once[] = [];
    const clients: Connected[] = [];

    /** A Once on its own cluster client of this kind (`url`: a `{ cluster }` spec we connect). */
    async function openOnce(options: Partial<OnceOptions> = {}): Promise<Once> {
      const client = await connectCluster(kind, seeds());
      clients.push(client);
      const once = createOnce({ redis: client.spec, namespace, leaseMs: 2_000, ...options });
      onces.push(once);
      return once;
    }

    const channelOf = (key: string) => `${namespace}:{${key}}:done`;

    /** Resolves once some subscriber is on `key`'s channel at the master of its slot; returns that master. */
    async function subscribedAt(key: string): Promise<RedisServer> {
      const channel = channelOf(key);
      const owner = await ownerOf(await slotOf(channel));
      await waitFor(async () => (await shardSubscribers(owner, channel)) > 0, {
        what: `a subscriber to ${channel} on ${owner.name}`,
      });
      return owner;
    }

    /** A leader for `key` in `once` whose fn runs until `release` is opened (with its value). */
    async function leadHeld(once: Once, key: string) {
      const started = gate();
      const release = gate<string>();
      const leading = once.runDetailed(key, async () => {
        started.open();
        return release.promise;
      });
      // A test that fails before awaiting it must not leave an unhandled rejection (closing rejects it).
      leading.catch(() => {});
      await started.promise;
      return { leading, release };
    }

    beforeEach(() => {
      namespace = `c-${kind}-${randomUUID()}`;
    });
    afterEach(async () => {
      // Ours first, then the caller's clients (a Once never closes a client it was given).
      await Promise.all(onces.splice(0).map((once) => once.close()));
      await Promise.all(clients.splice(0).map((client) => client.close()));
    });

    it('runs once across nodes whose keys live on different shards, waking followers over sharded pub/sub', async () => {
      const a = await openOnce();
      const b = await openOnce();
      const keys = Array.from({ length: 12 }, (_, i) => `key-${i}`);
      const owners = new Set(
        await Promise.all(keys.map(async (key) => ownerOf(await slotOf(channelOf(key))))),
      );
      expect(owners.size).toBeGreaterThan(1);

      let runs = 0;
      const release = gate();
      const fn = async (ctx: { key: string }) => {
        runs++;
        await release.promise;
        return `value of ${ctx.key}`;
      };
      const calls = keys.flatMap((key) => [a.runDetailed(key, fn), b.runDetailed(key, fn)]);
      // Let every follower subscribe and wait, then release the leaders.
      await waitFor(() => runs === keys.length, { what: 'every key to have a leader' });
      release.open();
      const results = await Promise.all(calls);
      expect(runs).toBe(keys.length);
      for (const [i, key] of keys.entries()) {
        const pair = results.slice(2 * i, 2 * i + 2);
        expect(pair.map((r) => r.value)).toEqual([`value of ${key}`, `value of ${key}`]);
        // The other caller either waited for it or, having come late, found it done.
        expect(pair.filter((r) => r.role === 'leader')).toHaveLength(1);
      }
      expect(await b.status('key-3')).toMatchObject({ state: 'done', value: 'value of key-3' });

      // A follower waiting on its shard's channel wakes on the leader's SPUBLISH.
      const { leading, release: finish } = await leadHeld(a, 'sharded');
      const following = b.runDetailed('sharded', () => 'never');
      await subscribedAt('sharded');
      finish.open('woken');
      expect(await leading).toMatchObject({ role: 'leader', value: 'woken' });
      expect(await following).toMatchObject({ role: 'follower', value: 'woken' });
    });

    it('wakes a follower whose sharded subscriber connection drops within moments, not at the lease deadline', async () => {
      // Before the subscription layer was rewritten, such a follower learned of the completion only at
      // the lease deadline (7.7 s of 8 s): the message was published while it was not subscribed.
      const leader = await openOnce({ leaseMs: 8_000 });
      const follower = await openOnce({ leaseMs: 8_000 });
      for (const key of ['dropped-1', 'dropped-2', 'dropped-3']) {
        const { leading, release } = await leadHeld(leader, key);
        const following = follower.runDetailed(key, () => 'never');
        const owner = await subscribedAt(key);

        const killed = Number(await admin(owner).call('CLIENT', 'KILL', 'TYPE', 'pubsub'));
        expect(killed).toBeGreaterThan(0);
        const releasedAt = performance.now();
        release.open(`value of ${key}`);
        const result = await following;
        const wokeAfterMs = performance.now() - releasedAt;

        expect(result).toMatchObject({ role: 'follower', value: `value of ${key}` });
        expect(wokeAfterMs).toBeLessThan(WAKE_BOUND_MS);
        expect(await leading).toMatchObject({ role: 'leader', value: `value of ${key}` });
      }
    });

    it('follows a slot migration while a follower waits: it resubscribes on the new master and gets the value', async () => {
      const leader = await openOnce({ leaseMs: 8_000 });
      const follower = await openOnce({ leaseMs: 8_000 });
      /** From the leader's release to the follower's value, for docs/RELIABILITY.md. */
      const settleMs: number[] = [];

      // Released at once after the migration: the follower may still be resubscribing.
      {
        const key = 'migrated-1';
        const { leading, release } = await leadHeld(leader, key);
        const following = follower.runDetailed(key, () => 'never');
        const source = await subscribedAt(key);
        const target = nodes.find((node) => node !== source)!;
        const moved = await migrateSlot(await slotOf(channelOf(key)), target);
        // The key's lease, state and fence share its hash tag: all of them moved with the slot.
        expect(moved).toEqual(
          expect.arrayContaining(['lease', 'state', 'fence'].map((name) => `${namespace}:{${key}}:${name}`)),
        );
        expect(await ownerOf(await slotOf(channelOf(key)))).toBe(target);
        // The old owner ended the subscription by itself (an unsolicited SUNSUBSCRIBE).
        expect(await shardSubscribers(source, channelOf(key))).toBe(0);

        const releasedAt = performance.now();
        release.open(`value of ${key}`);
        const result = await following;
        settleMs.push(performance.now() - releasedAt);
        expect(performance.now() - releasedAt).toBeLessThan(WAKE_BOUND_MS);
        expect(result).toMatchObject({ role: 'follower', value: `value of ${key}` });
        // The leader's complete ran on the new owner (its client followed MOVED).
        expect(await leading).toMatchObject({ role: 'leader', value: `value of ${key}` });
        expect(await follower.status(key)).toMatchObject({ state: 'done', value: `value of ${key}` });
      }

      // Released once the follower is back: its subscription now lives on the new master.
      {
        const key = 'migrated-2';
        const channel = channelOf(key);
        const { leading, release } = await leadHeld(leader, key);
        const following = follower.runDetailed(key, () => 'never');
        const source = await subscribedAt(key);
        const target = nodes.find((node) => node !== source)!;
        await migrateSlot(await slotOf(channel), target);

        const movedAt = performance.now();
        await waitFor(async () => (await shardSubscribers(target, channel)) > 0, {
          timeoutMs: WAKE_BOUND_MS,
          what: `the follower to subscribe to ${channel} on the new master ${target.name}`,
        });
        expect(performance.now() - movedAt).toBeLessThan(WAKE_BOUND_MS);
        expect(await shardSubscribers(source, channel)).toBe(0);
        // A publish there reaches it (the follower reads again on a message it cannot decode).
        expect(Number(await admin(target).call('SPUBLISH', channel, 'not a state'))).toBeGreaterThan(0);

        const releasedAt = performance.now();
        release.open(`value of ${key}`);
        expect(await following).toMatchObject({ role: 'follower', value: `value of ${key}` });
        settleMs.push(performance.now() - releasedAt);
        expect(performance.now() - releasedAt).toBeLessThan(WAKE_BOUND_MS);
        expect(await leading).toMatchObject({ role: 'leader', value: `value of ${key}` });
      }
      recordFault({
        id: 'cluster-slot-migration',
        runs: 2,
        callers: 4,
        executions: 2,
        done: 2,
        staleRefused: 0,
        settled: 4,
        worstSettleMs: Math.max(...settleMs),
      });
    });

    it('answers status, reset and wait through the cluster client', async () => {
      const a = await openOnce();
      const b = await openOnce({ maxAttempts: 1 });
      const key = 'admin';
      expect(await b.status(key)).toEqual({ state: 'idle', attempts: 0 });

      const { leading, release } = await leadHeld(a, key);
      const running = await b.status(key);
      expect(running).toMatchObject({ state: 'running', attempts: 1, owner: expect.any(String) });
      expect(Number.isSafeInteger(running.fencingToken)).toBe(true);
      await expect(b.reset(key)).rejects.toBeInstanceOf(OnceBusyError);
      const waiting = b.wait(key);
      await subscribedAt(key);
      release.open('first');
      expect(await waiting).toBe('first');
      expect(await leading).toMatchObject({
        role: 'leader',
        value: 'first',
        fencingToken: running.fencingToken,
      });
      expect(await b.status(key)).toMatchObject({ state: 'done', value: 'first', attempts: 1 });
      expect(await b.wait(key)).toBe('first');

      expect(await b.reset(key)).toEqual({ existed: true });
      expect(await a.status(key)).toMatchObject({ state: 'idle', attempts: 0 });
      // The reset reaches `a`'s memory over the control channel within moments: it runs again.
      await waitFor(async () => (await a.runDetailed(key, () => 'second')).role === 'leader', {
        what: "the reset to reach the other instance's memory",
      });
      const again = await b.status(key);
      expect(again).toMatchObject({ state: 'done', value: 'second', attempts: 1 });
      // Tokens keep rising across the reset.
      expect(again.fencingToken).toBeGreaterThan(running.fencingToken!);

      // A key whose attempts are spent: wait rejects at once, and status says why.
      await expect(
        b.run('broken', () => {
          throw new TypeError('no such table');
        }),
      ).rejects.toThrow('no such table');
      await expect(b.wait('broken')).rejects.toBeInstanceOf(OnceFailedError);
      expect(await a.status('broken')).toMatchObject({
        state: 'failed',
        attempts: 1,
        error: { name: 'TypeError', message: 'no such table' },
      });
      expect(await a.reset('broken')).toEqual({ existed: true });
      expect(await b.status('broken')).toMatchObject({ state: 'idle', attempts: 0 });
    });
  });
});
