/**
 * A plain ioredis connection for the commands that look at Redis itself rather than at one key (`list`,
 * `doctor`): SCAN, INFO, CONFIG GET, on every master of a Cluster. Every call is bounded by
 * --redis-timeout and fails as RedisUnavailableError (exit 69).
 */
import { Cluster, Redis } from 'ioredis';
import { refusedError } from '../drivers/refusal.js';
import { refusalReason } from '../drivers/refusal-reason.js';
import { safeCause } from '../drivers/safe-error.js';
import { RedisUnavailableError } from '../index.js';
import { keySlot } from '../slot.js';
import { withTimeout } from '../timeout.js';
import type { Connection } from './connection.js';

export interface AdminClient {
  readonly isCluster: boolean;
  /** The Redis, for messages: the URL masked, or the Cluster's seeds. */
  readonly label: string;
  /** One connection per master (the one server, or each master of a Cluster). */
  masters(): Promise<Redis[]>;
  /** The master that serves `name`'s slot (the one server, when not a Cluster). */
  masterFor(name: string): Promise<Redis>;
  /** `command` on `redis`, bounded; a refusal (NOPERM, unknown command) rejects with Redis' own error. */
  call(redis: Redis, command: string, ...args: Array<string | number>): Promise<unknown>;
  close(): Promise<void>;
}

export function openAdminClient(connection: Connection, timeoutMs: number): AdminClient {
  const options = {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    // No ready check: its INFO is refused by the ACL rule managed services hand out (-@dangerous), and
    // ioredis would print a warning of its own; doctor asks INFO itself, and reports a refusal.
    enableReadyCheck: false,
    retryStrategy: () => null, // one try: an operator's command reports, it does not linger
  };
  const { spec, display } = connection;
  // The CLI's own spec: a URL, or the seed nodes of a Cluster.
  const client =
    typeof spec === 'string'
      ? new Redis(spec, options)
      : new Cluster((spec as { cluster: Array<{ host: string; port: number }> }).cluster, {
          redisOptions: options,
          clusterRetryStrategy: () => null,
          lazyConnect: true,
        });
  // A refusal (TLS, AUTH) says so; anything else is "did not … in time". The cause is a copy: ioredis
  // puts the failed command on its error (HELLO's or AUTH's arguments: the password).
  const unavailable = (what: string, cause?: unknown) =>
    refusedError(cause, display) ??
    new RedisUnavailableError(
      `Redis at ${display} did not ${what} within ${timeoutMs} ms (--redis-timeout)${
        cause instanceof Error ? `: ${cause.message}` : ''
      }.`,
      cause === undefined ? undefined : { cause: safeCause(cause) },
    );
  // The connection's last error, for a connect that is still pending when the bound runs out.
  let lastError: unknown;
  client.on('error', (error: unknown) => {
    lastError = error;
  });
  let connected: Promise<void> | undefined;
  const connect = () =>
    (connected ??= withTimeout(
      client.connect(),
      timeoutMs,
      () => unavailable('accept a connection', lastError),
      // A refused handshake (AUTH, TLS) ends in "Connection is closed."; its 'error' said why.
      (error) => unavailable('accept a connection', refusalReason(lastError) ? lastError : error),
    ));
  return {
    isCluster: client instanceof Cluster,
    label: display,
    async masterFor(name) {
      await connect();
      if (!(client instanceof Cluster)) return client;
      // ioredis' slot table: the node keys serving each slot, the master first.
      const [masterKey] = (client as unknown as { slots: string[][] }).slots[keySlot(name)] ?? [];
      const master = client.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === masterKey);
      if (!master) throw unavailable(`say which master serves ${name}`);
      return master;
    },
    async masters() {
      await connect();
      return client instanceof Cluster ? client.nodes('master') : [client];
    },
    call(redis, command, ...args) {
      return withTimeout(
        redis.call(command, ...args),
        timeoutMs,
        () => unavailable(`answer ${command}`),
        // Redis' own answer (NOPERM, unknown command) is the caller's to read; a dropped connection is not.
        (error) =>
          error instanceof Error && error.name === 'ReplyError'
            ? error
            : unavailable(`answer ${command}`, error),
      );
    },
    async close() {
      client.disconnect();
    },
  };
}
