/**
 * The CLI over TLS: `rediss://` to a redis-server with a certificate from a private CA, trusted the
 * Node way (NODE_EXTRA_CA_CERTS), and refused — with a message that says why — without it.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/exit-codes.js';
import { type RedisServer, startRedis } from '../helpers/redis-server.js';
import { closedPort } from '../helpers/topologies.js';
import { runCli } from './cli.js';

const hasOpenssl = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** A private CA and a server certificate for 127.0.0.1 signed by it, in `dir`. */
function makeCertificates(dir: string): { ca: string; cert: string; key: string } {
  const at = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore', cwd: dir });
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=redis-once test CA',
    '-keyout',
    at('ca.key'),
    '-out',
    at('ca.pem'),
  );
  writeFileSync(at('san.cnf'), 'subjectAltName=IP:127.0.0.1\n');
  openssl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    '/CN=127.0.0.1',
    '-keyout',
    at('server.key'),
    '-out',
    at('server.csr'),
  );
  openssl(
    'x509',
    '-req',
    '-in',
    at('server.csr'),
    '-CA',
    at('ca.pem'),
    '-CAkey',
    at('ca.key'),
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    at('san.cnf'),
    '-out',
    at('server.pem'),
  );
  return { ca: at('ca.pem'), cert: at('server.pem'), key: at('server.key') };
}

describe.skipIf(!hasOpenssl)('redis-once over TLS (rediss://)', () => {
  let dir: string;
  let server: RedisServer;
  let tlsUrl: string;
  let ca: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'redis-once-tls-'));
    const files = makeCertificates(dir);
    ca = files.ca;
    const tlsPort = await closedPort();
    server = await startRedis({
      name: 'cli-tls',
      args: [
        '--tls-port',
        String(tlsPort),
        '--tls-cert-file',
        files.cert,
        '--tls-key-file',
        files.key,
        '--tls-ca-cert-file',
        files.ca,
        '--tls-auth-clients',
        'no',
      ],
    });
    tlsUrl = `rediss://127.0.0.1:${tlsPort}`;
  }, 30_000);
  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs, waits and reads status over TLS with the CA given as NODE_EXTRA_CA_CERTS', async () => {
    const namespace = `tls-${randomUUID()}`;
    const env = { NODE_EXTRA_CA_CERTS: ca };
    const flags = ['--key', 'migrate', '--redis', tlsUrl, '--namespace', namespace];
    const ran = await runCli(['run', ...flags, '--', 'sh', '-c', 'echo "ran over TLS"'], { env });
    expect(ran.result.code).toBe(0);
    expect(ran.stdout).toBe('ran over TLS\n');
    expect((await runCli(['wait', ...flags], { env })).result.code).toBe(0);
    const status = await runCli(['status', ...flags, '--json'], { env });
    expect(JSON.parse(status.stdout)).toMatchObject({ state: 'done' });
  });

  it('exits 69 naming the certificate problem when the CA is not trusted', async () => {
    const cli = await runCli(['status', '--key', 'k', '--redis', tlsUrl, '--redis-timeout', '1s']);
    expect(cli.result.code).toBe(EXIT.REDIS_UNAVAILABLE);
    expect(cli.stderr).toMatch(/is unreachable: .*(self[- ]signed|unable to verify|certificate)/i);
  });
});
