/**
 * "Say what is wrong, at once": a certificate Node does not trust, a certificate for another name, a
 * password refused or missing, and an ACL refusal each end a call in a RedisUnavailableError whose
 * `reason` names the cause and whose message says what to change — as soon as TLS or Redis said so,
 * well within redisTimeoutMs (5 s here, the default), not after it. For connections we open from a
 * URL, and for a caller's own ioredis and node-redis clients where they report the refusal while our
 * call waits. Real redis-server processes, real clients.
 */
import { randomUUID } from 'node:crypto';
import { Redis as Redis6 } from 'ioredis';
import { Redis as Redis5 } from 'ioredis5';
import { createClient as createClient6 } from 'redis';
import { createClient as createClient5 } from 'redis5';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createOnce, type Once, type RedisSpec, RedisUnavailableError } from '../../src/index.js';
import { type RedisServer, startRedis } from '../helpers/redis-server.js';
import {
  type Certificates,
  hasOpenssl,
  makeCertificates,
  startTlsRedis,
  type TlsRedis,
} from '../helpers/tls.js';

type Reason = RedisUnavailableError['reason'];
type Op = 'run' | 'wait' | 'status' | 'reset';
const OPS: Op[] = ['run', 'wait', 'status', 'reset'];
/** The bound a refusal must beat, measured from the call: far below redisTimeoutMs (5 s). */
const AT_ONCE_MS = 2000;
const ADMIN_PASSWORD = 'admin-Pw-1';

let certs: Certificates;
let tlsGood: TlsRedis;
let tlsSelf: TlsRedis;
let tlsOther: TlsRedis;
let tlsSwap: TlsRedis;
let auth: RedisServer;
let admin: Redis6;
const onces: Once[] = [];
const cleanups: Array<() => unknown> = [];

beforeAll(async () => {
  certs = makeCertificates();
  [tlsGood, tlsSelf, tlsOther, tlsSwap, auth] = await Promise.all([
    startTlsRedis('sec-tls', certs, certs.server),
    startTlsRedis('sec-tls-self', certs, certs.selfSigned),
    startTlsRedis('sec-tls-other', certs, certs.otherName),
    startTlsRedis('sec-tls-swap', certs, certs.server),
    startRedis({ name: 'sec-auth', args: ['--requirepass', ADMIN_PASSWORD] }),
  ]);
  admin = auth.client({ password: ADMIN_PASSWORD });
  // An ACL user of another namespace: its keys and channels are not ours.
  await admin.call('ACL', 'SETUSER', 'elsewhere', 'on', '>elsewhere-pw', '~other:*', '&other:*', '+@all');
}, 60_000);
afterEach(async () => {
  await Promise.all(onces.splice(0).map((once) => once.close()));
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(async () => {
  await Promise.all([tlsGood, tlsSelf, tlsOther, tlsSwap].map((t) => t?.server.stop()));
  await auth?.stop();
  certs?.remove();
});

function open(redis: RedisSpec): Once {
  // redisTimeoutMs left at its default (5 s): a refusal must not wait for it.
  const once = createOnce({ redis, namespace: `sec-${randomUUID()}` });
  onces.push(once);
  return once;
}

function call(once: Once, op: Op): Promise<unknown> {
  switch (op) {
    case 'run':
      return once.run('k', () => 'ran');
    case 'wait':
      return once.wait('k');
    case 'status':
      return once.status('k');
    case 'reset':
      return once.reset('k');
  }
}

/** The call's rejection, and how long after the call it came. */
async function refusal(start: () => Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = performance.now();
  const error = await start().then(
    () => new Error('resolved: expected a refusal'),
    (e: unknown) => e,
  );
  return { error, ms: performance.now() - started };
}

function expectRefused(
  { error, ms }: { error: unknown; ms: number },
  reason: Reason,
  message: RegExp,
  what: string,
): void {
  expect(error, what).toBeInstanceOf(RedisUnavailableError);
  expect((error as RedisUnavailableError).reason, `${what}: ${(error as Error).message}`).toBe(reason);
  expect((error as Error).message, what).toMatch(message);
  expect(ms, `${what}: ${(error as Error).message}`).toBeLessThan(AT_ONCE_MS);
}

const UNKNOWN_CA = /TLS to Redis at .* signed by a CA Node does not trust .*tls\.ca.*NODE_EXTRA_CA_CERTS/;
const OTHER_NAME =
  /TLS to Redis at .* certificate is for another host name \(Hostname\/IP does not match.*servername/;
const WRONG_PASSWORD = /WRONGPASS .*[Cc]heck the user name and password/;
const NO_PASSWORD = /NOAUTH .*[Gg]ive the user and password/;
/** A client that reconnects after its password changed: refused, or (node-redis) not authenticated. */
const ROTATED = /(?:WRONGPASS .*[Cc]heck|NOAUTH .*[Gg]ive|unauthenticated.*[Gg]ive) the user/;
const NOPERM = /refused .* for this ACL user|NOPERM/;

describe.skipIf(!hasOpenssl)('a URL we open: each refusal at once, typed and named', () => {
  const cases: Array<{ name: string; url: () => string; reason: Reason; message: RegExp }> = [
    {
      name: 'a certificate from a CA Node does not trust',
      url: () => tlsGood.url,
      reason: 'tls-unknown-ca',
      message: UNKNOWN_CA,
    },
    {
      name: 'a self-signed certificate',
      url: () => tlsSelf.url,
      reason: 'tls-unknown-ca',
      message: /TLS to Redis at .*self-signed certificate.*NODE_EXTRA_CA_CERTS/,
    },
    {
      name: 'a wrong password',
      url: () => `redis://:wrong-pw@127.0.0.1:${auth.port}`,
      reason: 'auth',
      message: WRONG_PASSWORD,
    },
    {
      name: 'a user that does not exist',
      url: () => `redis://nobody:wrong-pw@127.0.0.1:${auth.port}`,
      reason: 'auth',
      message: WRONG_PASSWORD,
    },
    {
      name: 'no password, to a server that needs one',
      url: () => `redis://127.0.0.1:${auth.port}`,
      reason: 'auth',
      message: NO_PASSWORD,
    },
    {
      name: "an ACL user without the namespace's keys and channels",
      url: () => `redis://elsewhere:elsewhere-pw@127.0.0.1:${auth.port}`,
      reason: 'noperm',
      message: NOPERM,
    },
  ];
  for (const c of cases) {
    it(`${c.name}: run, wait, status and reset`, async () => {
      for (const op of OPS) {
        // A fresh instance per call: each meets the refusal on its own first connection.
        const once = open(c.url());
        expectRefused(await refusal(() => call(once, op)), c.reason, c.message, `${c.name}, ${op}`);
      }
    });
  }

  it('still connects with the CA trusted, and the refusal says nothing the server did not', async () => {
    // The control: the same server works once the CA is given (a caller's client, for the option).
    const client = new Redis6(tlsGood.url, { tls: { ca: certs.caPem } });
    client.on('error', () => {});
    cleanups.push(() => client.disconnect());
    expect(await open(client as never).run('k', () => 'over TLS')).toBe('over TLS');
  });
});

describe.skipIf(!hasOpenssl)(
  "a caller's ioredis client, connecting: its refusal while our call waits",
  () => {
    const kinds = [
      ['ioredis 6', (url: string, tls?: object) => new Redis6(url, tls ? { tls } : {})],
      ['ioredis 5', (url: string, tls?: object) => new Redis5(url, tls ? { tls } : {})],
    ] as const;
    for (const [kind, make] of kinds) {
      const cases: Array<{ name: string; client: () => Redis6 | Redis5; reason: Reason; message: RegExp }> = [
        {
          name: 'no CA for a private certificate',
          client: () => make(tlsGood.url),
          reason: 'tls-unknown-ca',
          message: UNKNOWN_CA,
        },
        {
          name: 'a certificate for another name',
          client: () => make(tlsOther.url, { ca: certs.caPem }),
          reason: 'tls-hostname',
          message: OTHER_NAME,
        },
        {
          name: 'a wrong password',
          client: () => make(`redis://:wrong-pw@127.0.0.1:${auth.port}`),
          reason: 'auth',
          message: WRONG_PASSWORD,
        },
        {
          name: 'no password',
          client: () => make(`redis://127.0.0.1:${auth.port}`),
          reason: 'auth',
          message: NO_PASSWORD,
        },
        {
          name: 'an ACL user of another namespace',
          client: () => make(`redis://elsewhere:elsewhere-pw@127.0.0.1:${auth.port}`),
          reason: 'noperm',
          message: NOPERM,
        },
      ];
      for (const c of cases) {
        it(`${kind}, ${c.name}: run, wait, status and reset`, async () => {
          for (const op of OPS) {
            const client = c.client();
            client.on('error', () => {});
            cleanups.push(() => client.disconnect());
            const once = open(client as never);
            expectRefused(
              await refusal(() => call(once, op)),
              c.reason,
              c.message,
              `${kind}, ${c.name}, ${op}`,
            );
          }
        });
      }
    }
  },
);

describe.skipIf(!hasOpenssl)(
  "a caller's node-redis client, connected, then refused when it reconnects",
  () => {
    // One signature for both versions: the tests use what they share.
    const kinds: Array<[string, (options: object) => ReturnType<typeof createClient6>]> = [
      ['node-redis 6', createClient6 as never],
      ['node-redis 5', createClient5 as never],
    ];

    /** Waits for the client's next error event: it has tried to reconnect and was refused. */
    function nextError(client: { once(event: 'error', listener: (error: Error) => void): unknown }) {
      return new Promise<Error>((resolve) => client.once('error', resolve));
    }

    for (const [kind, create] of kinds) {
      it(`${kind}: its password rotated away (WRONGPASS on reconnect)`, async () => {
        const user = `rot-${randomUUID().slice(0, 8)}`;
        await admin.call('ACL', 'SETUSER', user, 'on', '>first-pw', '~*', '&*', '+@all');
        const client = create({ url: `redis://${user}:first-pw@127.0.0.1:${auth.port}` });
        client.on('error', () => {});
        await client.connect();
        cleanups.push(() => client.isOpen && client.destroy());
        const once = open(client as never);
        expect(await once.run('before', () => 'ok')).toBe('ok');
        // The server changes the password and drops the user's connections; the client reconnects.
        await admin.call('ACL', 'SETUSER', user, 'resetpass', '>second-pw');
        const refused = nextError(client);
        await admin.call('CLIENT', 'KILL', 'USER', user);
        await refused;
        expect(client.isReady).toBe(false);
        expectRefused(await refusal(() => once.status('k')), 'auth', ROTATED, `${kind} status`);
        expectRefused(await refusal(() => once.reset('k')), 'auth', ROTATED, `${kind} reset`);
        expectRefused(await refusal(() => once.run('k', () => 'no')), 'auth', ROTATED, `${kind} run`);
      });

      it(`${kind}: the server's certificate replaced by one for another name, then a self-signed one`, async () => {
        const client = create({ url: tlsSwap.url, socket: { tls: true, ca: certs.caPem } } as never);
        client.on('error', () => {});
        await client.connect();
        cleanups.push(() => client.isOpen && client.destroy());
        const swapAdmin = tlsSwap.server.client();
        const swap = async (pair: { cert: string; key: string }) => {
          await swapAdmin.call('CONFIG', 'SET', 'tls-cert-file', pair.cert, 'tls-key-file', pair.key);
          const refused = nextError(client);
          // Only the TLS port's clients: the admin connection stays.
          await swapAdmin.call('CLIENT', 'KILL', 'LADDR', `127.0.0.1:${tlsSwap.tlsPort}`);
          await refused;
        };
        cleanups.push(() =>
          swapAdmin.call(
            'CONFIG',
            'SET',
            'tls-cert-file',
            certs.server.cert,
            'tls-key-file',
            certs.server.key,
          ),
        );
        const once = open(client as never);
        expect(await once.run('before', () => 'ok')).toBe('ok');
        await swap(certs.otherName);
        expectRefused(await refusal(() => once.status('k')), 'tls-hostname', OTHER_NAME, `${kind} status`);
        expectRefused(
          await refusal(() => once.run('k', () => 'no')),
          'tls-hostname',
          OTHER_NAME,
          `${kind} run`,
        );
        await swap(certs.selfSigned);
        expectRefused(
          await refusal(() => once.status('k')),
          'tls-unknown-ca',
          /self-signed/,
          `${kind} status`,
        );
        expectRefused(await refusal(() => once.reset('k')), 'tls-unknown-ca', /self-signed/, `${kind} reset`);
      });

      it(`${kind}: an ACL user of another namespace (NOPERM)`, async () => {
        const client = create({ url: `redis://elsewhere:elsewhere-pw@127.0.0.1:${auth.port}` });
        client.on('error', () => {});
        await client.connect();
        cleanups.push(() => client.isOpen && client.destroy());
        for (const op of OPS) {
          const once = open(client as never);
          expectRefused(await refusal(() => call(once, op)), 'noperm', NOPERM, `${kind}, ${op}`);
        }
      });
    }
  },
);
