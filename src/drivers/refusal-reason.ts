/**
 * Which refusal an error from a client (ioredis, node-redis) or from Node's TLS is: a configuration to
 * fix rather than a moment to wait out. Pure, and free of our error classes, so that errors.ts can
 * use it to type an error from its cause.
 */

/**
 * - `tls-unknown-ca`: the server's certificate is self-signed or signed by a CA Node does not trust;
 * - `tls-hostname`: the certificate is valid, but for another host name;
 * - `tls`: any other TLS failure (an expired certificate, a port that does not speak TLS, a client
 *   certificate the server wants);
 * - `auth`: the server refused the credentials (WRONGPASS) or wants some (NOAUTH);
 * - `noperm`: the ACL user may not run a command, or touch a key or channel (NOPERM).
 */
export type RedisRefusalReason = 'tls-unknown-ca' | 'tls-hostname' | 'tls' | 'auth' | 'noperm';

/** Node's codes for a certificate whose issuer it cannot trust (`tls.ca` or NODE_EXTRA_CA_CERTS fix it). */
const UNKNOWN_CA_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
]);

const OTHER_TLS_CODES = new Set([
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'EPROTO',
]);

/**
 * The refusal `error` is, looking also where clients nest the real error (ioredis' Cluster puts it in
 * `lastNodeError`, a connection to several addresses is an AggregateError, ours have a `cause`);
 * undefined when it is none (a timeout, a dropped connection, a reply such as OOM or BUSY).
 */
export function refusalReason(error: unknown, depth = 0): RedisRefusalReason | undefined {
  if (typeof error !== 'object' || error === null || depth > 4) return undefined;
  const own = ownReason(error as { code?: unknown; message?: unknown; reason?: unknown });
  if (own) return own;
  const nested = error as { lastNodeError?: unknown; errors?: unknown; cause?: unknown };
  for (const inner of [nested.lastNodeError, ...(Array.isArray(nested.errors) ? nested.errors : [])]) {
    const reason = refusalReason(inner, depth + 1);
    if (reason) return reason;
  }
  return refusalReason(nested.cause, depth + 1);
}

function ownReason(error: {
  code?: unknown;
  message?: unknown;
  reason?: unknown;
}): RedisRefusalReason | undefined {
  // One of ours, already typed.
  if (isReason(error.reason)) return error.reason;
  const code = typeof error.code === 'string' ? error.code : '';
  if (UNKNOWN_CA_CODES.has(code)) return 'tls-unknown-ca';
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return 'tls-hostname';
  if (OTHER_TLS_CODES.has(code) || code.startsWith('ERR_SSL_')) return 'tls';
  const message = typeof error.message === 'string' ? error.message : '';
  // A reply may come wrapped in our own message ("Redis at … failed the claim script: NOPERM …").
  // "Protocol error: unauthenticated multibulk length": Redis dropping a client that sends a long
  // command without having authenticated (node-redis 5 goes on after its AUTH was refused).
  if (
    /(?:^|: )(?:WRONGPASS|NOAUTH)\b|invalid username-password pair|^ERR invalid password|Protocol error: unauthenticated/.test(
      message,
    )
  )
    return 'auth';
  if (/(?:^|: )NOPERM\b|The user executing the script can't/.test(message)) return 'noperm';
  // Copies of a client's error that kept only the message (an older safeCause, a wrapper).
  if (/self[- ]signed certificate|unable to (?:verify|get (?:local )?issuer)/i.test(message))
    return 'tls-unknown-ca';
  if (/^Hostname\/IP does not match certificate's altnames/.test(message)) return 'tls-hostname';
  if (
    /before secure TLS connection was established|wrong version number|certificate has expired/i.test(message)
  )
    return 'tls';
  return undefined;
}

const REASONS: ReadonlySet<unknown> = new Set<RedisRefusalReason>([
  'tls-unknown-ca',
  'tls-hostname',
  'tls',
  'auth',
  'noperm',
]);

function isReason(value: unknown): value is RedisRefusalReason {
  return REASONS.has(value);
}
