/**
 * Refusals — TLS rejecting the server's certificate, Redis rejecting the credentials or the ACL user —
 * as typed errors that name the cause and say what to change, raised as soon as the client reports
 * them instead of after the bound runs out: no retry mends them, and "did not answer in time" would
 * send the reader looking at the network.
 */
import { RedisUnavailableError } from '../errors.js';
import { type RedisRefusalReason, refusalReason } from './refusal-reason.js';
import { refusingError, safeCause } from './safe-error.js';

/**
 * The typed error for `error` when it is a refusal (else undefined): `label` names the server,
 * `what` what was asked ("the claim script"), `note` adds to the client's own words.
 */
export function refusedError(
  error: unknown,
  label: string,
  what?: string,
  note = '',
): RedisUnavailableError | undefined {
  const reason = refusalReason(error);
  if (!reason) return undefined;
  if (error instanceof RedisUnavailableError) return error;
  const inner = refusingError(error);
  const words = (inner instanceof Error ? inner.message : String(inner)).replace(/\.+$/, '');
  return new RedisUnavailableError(advice(reason, label, `${words}${note}`, what), {
    reason,
    cause: safeCause(inner),
  });
}

function advice(reason: RedisRefusalReason, label: string, words: string, what?: string): string {
  switch (reason) {
    case 'tls-unknown-ca':
      return (
        `TLS to Redis at ${label} failed: the server's certificate is signed by a CA Node does not trust ` +
        `(${words}). Pass that CA as tls.ca on a client of your own (ioredis: { tls: { ca } }; ` +
        'node-redis: { socket: { tls: true, ca } }), or set NODE_EXTRA_CA_CERTS=/path/to/ca.pem before Node starts.'
      );
    case 'tls-hostname':
      return (
        `TLS to Redis at ${label} failed: the server's certificate is for another host name (${words}). ` +
        'Connect by a name the certificate lists, or set tls.servername to one of them.'
      );
    case 'tls':
      return (
        `TLS to Redis at ${label} failed (${words}). Check that this port speaks TLS and that the ` +
        "server's certificate is valid (and whether it wants a client certificate: tls.cert and tls.key)."
      );
    case 'auth':
      return /NOAUTH|unauthenticated/.test(words)
        ? `Redis at ${label} requires a password (${words}). Give the user and password ` +
            '(in a URL: redis://user:password@host:port, percent-encoded).'
        : `Redis at ${label} refused the credentials (${words}). Check the user name and password ` +
            '(in a URL: redis://user:password@host:port, percent-encoded).';
    case 'noperm':
      return (
        `Redis at ${label} refused ${what ?? 'a command'} for this ACL user (${words}). Grant the user the ` +
        "commands redis-once uses and the namespace's keys (~<namespace>:*) and channels " +
        "(&<namespace>:*): see the README's least-privilege rule."
      );
  }
}

/**
 * A subscription Redis refused (the ACL user, or a connection not authenticated), with what to change.
 * The client's own words stay first (NOPERM …, NOAUTH …): the subscription layer tells a refusal,
 * which no retry changes, by them.
 */
export function refusedSubscription(error: unknown, channels: readonly string[], sharded: boolean): unknown {
  if (!(error instanceof Error)) return error;
  const words = error.message.replace(/\.+$/, '');
  let change: string;
  if (/^NOPERM\b/.test(words)) {
    const grant = /channel/i.test(words)
      ? "the namespace's channels, &<namespace>:*"
      : `+${sharded ? 'ssubscribe' : 'subscribe'}`;
    change = `this ACL user may not subscribe to ${channels.join(', ')}: grant it ${grant}`;
  } else if (/^NOAUTH\b/.test(words)) {
    change =
      'Redis requires a password: give the user and password (in a URL: redis://user:password@host:port)';
  } else if (/^WRONGPASS\b/.test(words)) {
    change =
      'Redis refused the credentials: check the user name and password (in a URL: redis://user:password@host:port)';
  } else {
    return error;
  }
  const refused = new Error(`${words} (${change})`);
  refused.name = error.name;
  return refused;
}

interface Emitter {
  // biome-ignore lint/suspicious/noExplicitAny: clients declare their listeners' arguments as any[]
  on(event: string, listener: (...args: any[]) => void): unknown;
}

/**
 * `call`, or the refusal the client reports meanwhile by an 'error' event (a caller's client queueing
 * our command while it cannot connect: it would hold it until our bound, or for ever). Listens only
 * while `call` is pending, so a caller's client is as it was once the call settles.
 */
export function raceRefusal<T>(call: Promise<T>, client: Emitter, label: string, what: string): Promise<T> {
  const emitter = client as Emitter & { off?(event: string, listener: (error: unknown) => void): unknown };
  if (typeof emitter.off !== 'function') return call;
  return new Promise<T>((resolve, reject) => {
    const onError = (error: unknown) => {
      const refused = refusedError(error, label, what);
      if (!refused) return;
      emitter.off?.('error', onError);
      reject(refused);
    };
    emitter.on('error', onError);
    call.then(
      (value) => {
        emitter.off?.('error', onError);
        resolve(value);
      },
      (error: unknown) => {
        emitter.off?.('error', onError);
        reject(error);
      },
    );
  });
}
