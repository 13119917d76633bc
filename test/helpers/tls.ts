/**
 * TLS for tests: a private CA and certificates made with openssl in a temporary directory, and
 * redis-server processes that speak TLS on a port of their own (`--tls-port`; the plain port stays
 * open for the test's own admin client).
 *
 * - `server`: signed by the CA, for 127.0.0.1 and localhost (trusted once the CA is given);
 * - `otherName`: signed by the same CA, for another host name (a hostname mismatch);
 * - `selfSigned`: its own issuer (a self-signed certificate).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type RedisServer, startRedis } from './redis-server.js';
import { closedPort } from './topologies.js';

export const hasOpenssl: boolean = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

export interface CertificatePair {
  /** PEM file paths. */
  cert: string;
  key: string;
}

export interface Certificates {
  readonly dir: string;
  /** The CA's certificate: its path, and its PEM text (for a client's `tls.ca`). */
  readonly ca: string;
  readonly caPem: string;
  readonly server: CertificatePair;
  readonly otherName: CertificatePair;
  readonly selfSigned: CertificatePair;
  /** Removes the directory. */
  remove(): void;
}

/** A CA and the three certificates above, in a new temporary directory. */
export function makeCertificates(): Certificates {
  const dir = mkdtempSync(join(tmpdir(), 'redis-once-tls-'));
  const at = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore', cwd: dir });
  const selfSignedPair = (name: string, subject: string, san?: string): CertificatePair => {
    openssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      subject,
      ...(san ? ['-addext', `subjectAltName=${san}`] : []),
      '-keyout',
      at(`${name}.key`),
      '-out',
      at(`${name}.pem`),
    );
    return { cert: at(`${name}.pem`), key: at(`${name}.key`) };
  };
  const signed = (name: string, subject: string, san: string): CertificatePair => {
    writeFileSync(at(`${name}.cnf`), `subjectAltName=${san}\n`);
    openssl(
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      subject,
      '-keyout',
      at(`${name}.key`),
      '-out',
      at(`${name}.csr`),
    );
    openssl(
      'x509',
      '-req',
      '-in',
      at(`${name}.csr`),
      '-CA',
      at('ca.pem'),
      '-CAkey',
      at('ca.key'),
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      at(`${name}.cnf`),
      '-out',
      at(`${name}.pem`),
    );
    return { cert: at(`${name}.pem`), key: at(`${name}.key`) };
  };
  selfSignedPair('ca', '/CN=redis-once test CA');
  const certificates: Certificates = {
    dir,
    ca: at('ca.pem'),
    caPem: readFileSync(at('ca.pem'), 'utf8'),
    server: signed('server', '/CN=127.0.0.1', 'IP:127.0.0.1,DNS:localhost'),
    otherName: signed('other-name', '/CN=redis.other.example', 'DNS:redis.other.example'),
    selfSigned: selfSignedPair('self-signed', '/CN=127.0.0.1', 'IP:127.0.0.1,DNS:localhost'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
  return certificates;
}

export interface TlsRedis {
  readonly server: RedisServer;
  readonly tlsPort: number;
  /** `rediss://127.0.0.1:<tlsPort>`, no credentials. */
  readonly url: string;
}

/**
 * A redis-server with TLS on a port of its own, presenting `pair` (clients need no certificate of
 * their own). `args` are added (a password, say).
 */
export async function startTlsRedis(
  name: string,
  certificates: Certificates,
  pair: CertificatePair,
  args: string[] = [],
): Promise<TlsRedis> {
  const tlsPort = await closedPort();
  const server = await startRedis({
    name,
    args: [
      '--tls-port',
      String(tlsPort),
      '--tls-cert-file',
      pair.cert,
      '--tls-key-file',
      pair.key,
      '--tls-ca-cert-file',
      certificates.ca,
      '--tls-auth-clients',
      'no',
      ...args,
    ],
  });
  return { server, tlsPort, url: `rediss://127.0.0.1:${tlsPort}` };
}
