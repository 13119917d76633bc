/**
 * Every fault the suite injects, with the guarantee its test holds the library to. docs/RELIABILITY.md
 * is written from this list and from what each test measured (test/helpers/reliability.ts); a fault
 * whose test has not passed shows as such there.
 */
export interface Fault {
  id: string;
  /** What is done to the system. */
  fault: string;
  /** What must hold, as the test checks it. */
  guarantee: string;
  /** The test file that injects it. */
  test: string;
}

export const FAULTS: readonly Fault[] = [
  {
    id: 'leader-killed-claiming',
    fault: 'leader SIGKILLed while its claim is on the way (a slow link)',
    guarantee:
      'the claim lands after its sender died; another node takes over at the lease deadline and runs fn once',
    test: 'test/chaos/process-faults.test.ts',
  },
  {
    id: 'leader-killed-running',
    fault: 'leader SIGKILLed mid-run',
    guarantee: 'a follower takes over at the lease deadline with a higher token; fn completes once',
    test: 'test/chaos/process-faults.test.ts',
  },
  {
    id: 'leader-killed-completing',
    fault: 'leader SIGKILLed after its complete was sent, before the reply arrived',
    guarantee: 'the value recorded is the one every caller gets; fn never runs again',
    test: 'test/chaos/process-faults.test.ts',
  },
  {
    id: 'leader-stopped',
    fault: 'leader SIGSTOPped past its lease, then resumed',
    guarantee:
      'its ctx.signal aborts, its result is refused (LeaseLostError), its late write is refused by the fencing token',
    test: 'test/chaos/process-faults.test.ts',
  },
  {
    id: 'leader-blackholed',
    fault: "leader's network black-holed past its lease",
    guarantee:
      'ctx.signal aborts before the lease can expire; a follower takes over; the stale write is refused',
    test: 'test/chaos/network-faults.test.ts',
  },
  {
    id: 'follower-blackholed',
    fault: "follower's network black-holed while it waits",
    guarantee: 'it settles with RedisUnavailableError within its bound, never with a wrong value',
    test: 'test/chaos/network-faults.test.ts',
  },
  {
    id: 'redis-oom',
    fault: 'Redis memory full, maxmemory-policy noeviction (OOM)',
    guarantee: 'a typed error naming OOM, within redisTimeoutMs; fn never starts; nothing written',
    test: 'test/chaos/redis-refusals.test.ts',
  },
  {
    id: 'redis-acl',
    fault: 'an ACL user without EVALSHA',
    guarantee: 'a typed error naming the command (NOPERM), within redisTimeoutMs; nothing written',
    test: 'test/chaos/redis-refusals.test.ts',
  },
  {
    id: 'redis-busy',
    fault: 'a script hogging the server (BUSY)',
    guarantee: 'a typed error naming BUSY, within redisTimeoutMs; nothing written',
    test: 'test/chaos/redis-refusals.test.ts',
  },
  {
    id: 'redis-readonly',
    fault: 'pointed at a replica (READONLY, as after a failover)',
    guarantee: 'a typed error naming READONLY, within redisTimeoutMs; nothing written',
    test: 'test/chaos/redis-refusals.test.ts',
  },
  {
    id: 'big-value',
    fault: 'a 3 MB value with client-output-buffer-limit pubsub 1mb 512kb 1',
    guarantee: 'every follower gets the whole value (the message leaves it out; they read it)',
    test: 'test/chaos/redis-refusals.test.ts',
  },
  {
    id: 'redis-restarted-empty',
    fault: 'redis-server restarted without persistence while a leader runs and followers wait',
    guarantee:
      'Redis forgot the key, so it runs a second time (attempt 1), with a higher token; the first run hears its lease is gone, and its late write is refused',
    test: 'test/chaos/process-faults.test.ts',
  },
  {
    id: 'random-soak',
    fault:
      'randomized soak: 4 processes × 3 callers over many keys, with a fault every 220 ms on average (SIGKILL and replace, SIGSTOP past the lease, black-hole, slow link, cut); Runs counts keys',
    guarantee:
      'every caller that got a value got the one its key is done with; the last accepted ledger write is the completing attempt; only typed errors; no unhandled rejection; every process exits by itself',
    test: 'test/chaos/random-soak.test.ts',
  },
  {
    id: 'cluster-slot-migration',
    fault:
      "Redis Cluster: the key's slot migrated to another master while a follower waits (once per client)",
    guarantee:
      'the follower resubscribes on the new master and gets the value within moments; the leader completes there',
    test: 'test/integration/cluster.test.ts',
  },
  {
    id: 'leader-event-loop-blocked',
    fault: "leader's event loop blocked by CPU-bound work for twice its lease",
    guarantee:
      'the standby renewer (another thread, its own connection) renews the lease while the loop is stalled: fn runs once, nobody takes over, its write is accepted',
    test: 'test/chaos/process-faults.test.ts',
  },
  {
    id: 'leader-event-loop-wedged',
    fault: "leader's event loop blocked past maxStallMs (a wedged loop), for twice its lease",
    guarantee:
      "no more renewals once the stall passes maxStallMs: a follower takes over at the lease deadline; the wedged fn's caller gets LeaseLostError when fn returns, its write is refused",
    test: 'test/chaos/process-faults.test.ts',
  },
  {
    id: 'cluster-failover-replica-ack',
    fault:
      "Redis Cluster: the master of the key's slot SIGKILLed mid-run, its replica promoted, with replicaAck",
    guarantee:
      'the replica acknowledged the claim: the leader completes on it, every follower gets the value, fn runs once',
    test: 'test/chaos/failover.test.ts',
  },
  {
    id: 'cluster-failover',
    fault:
      "Redis Cluster: the master of the key's slot SIGKILLed mid-run, its replica promoted, without replicaAck",
    guarantee:
      'replication is asynchronous, so the key may run again (a higher token); either way every value handed out is the one the key is done with, and a first leader whose claim was lost gets LeaseLostError',
    test: 'test/chaos/failover.test.ts',
  },
  {
    id: 'sentinel-failover',
    fault:
      'Sentinel: a failover (SENTINEL FAILOVER) while the leader runs and followers wait, with replicaAck',
    guarantee:
      'the clients follow the new master; the leader completes there; every follower gets the value; fn runs once',
    test: 'test/integration/sentinel.test.ts',
  },
];
