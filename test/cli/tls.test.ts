/**
 * The CLI over TLS: `rediss://` to a redis-server with a certificate from a private CA, trusted the
 * Node way (NODE_EXTRA_CA_CERTS), and refused — with a message that says why — without it.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/exit-codes.js';
import {
  type Certificates,
  hasOpenssl,
  makeCertificates,
  startTlsRedis,
  type TlsRedis,
} from '../helpers/tls.js';
import { runCli } from './cli.js';

describe.skipIf(!hasOpenssl)('redis-once over TLS (rediss://)', () => {
  let certs: Certificates;
  let server: TlsRedis;
  let otherName: TlsRedis;
  let tlsUrl: string;
  let ca: string;

  beforeAll(async () => {
    certs = makeCertificates();
    ca = certs.ca;
    [server, otherName] = await Promise.all([
      startTlsRedis('cli-tls', certs, certs.server),
      startTlsRedis('cli-tls-other', certs, certs.otherName),
    ]);
    tlsUrl = server.url;
  }, 30_000);
  afterAll(async () => {
    await Promise.all([server?.server.stop(), otherName?.server.stop()]);
    certs?.remove();
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

  it('exits 69 at once, naming the certificate problem and NODE_EXTRA_CA_CERTS, when the CA is not trusted', async () => {
    const cli = await runCli(['status', '--key', 'k', '--redis', tlsUrl, '--redis-timeout', '30s']);
    expect(cli.result.code).toBe(EXIT.REDIS_UNAVAILABLE);
    expect(cli.stderr).toMatch(
      /error: TLS to Redis at rediss:\/\/127\.0\.0\.1:\d+ failed: the server's certificate is signed by a CA Node does not trust \(self[- ]signed certificate in certificate chain\); give that CA's certificate file as NODE_EXTRA_CA_CERTS=/,
    );
    // Long before --redis-timeout (30 s; the process's own start-up included): the refusal is the news.
    expect(performance.now() - cli.startedAt).toBeLessThan(15_000);
  });

  it('exits 69 at once naming the host name when the certificate is for another name', async () => {
    const cli = await runCli(
      ['run', '--key', 'k', '--redis', otherName.url, '--redis-timeout', '30s', '--', 'true'],
      {
        env: { NODE_EXTRA_CA_CERTS: ca },
      },
    );
    expect(cli.result.code).toBe(EXIT.REDIS_UNAVAILABLE);
    expect(cli.stderr).toMatch(
      /error: TLS to Redis at rediss:\/\/127\.0\.0\.1:\d+ failed: the server's certificate is for another host name \(Hostname\/IP does not match certificate's altnames: IP: 127\.0\.0\.1 is not in the cert's list.*\); name the server in --redis by a host name its certificate lists/,
    );
    expect(performance.now() - cli.startedAt).toBeLessThan(15_000);
  });
});
