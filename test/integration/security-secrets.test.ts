/**
 * No secret in errors, events, logs or status: with a password in the URL (and in a caller's ioredis
 * and node-redis clients), every failure we can provoke — unreachable, a wrong password, TLS refused,
 * NOPERM, a Redis that stops answering, a wait timing out, a failing fn, a lost lease, a quorum
 * without a majority, a URL a client would misread — is examined everywhere it can show: each
 * error's message, String(), stack, cause chain, AggregateError members, JSON and util.inspect with
 * hidden properties (where a client's own error would carry the AUTH command's arguments); every
 * diagnostics_channel message and tracing context; every logger line; the library's debug output
 * (DEBUG=redis-once*); anything printed; and status(). The password appears nowhere: not raw, not
 * percent-encoded, not base64, not in part.
 */
import { randomUUID } from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';
import { format, inspect } from 'node:util';
import createDebug from 'debug';
import { Redis as Redis6 } from 'ioredis';
import { Redis as Redis5 } from 'ioredis5';
import { createClient as createClient6 } from 'redis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createOnce, type Once, type OnceLogger, type RedisSpec } from '../../src/index.js';
import { canInjectFaults, type RedisServer, startRedis } from '../helpers/redis-server.js';
import {
  type Certificates,
  hasOpenssl,
  makeCertificates,
  startTlsRedis,
  type TlsRedis,
} from '../helpers/tls.js';
import { closedPort } from '../helpers/topologies.js';

/** The secret: every character a URL must encode, so encoded and raw forms differ. */
const PASSWORD = 'Zq7/kX9?mW#2@vB%tL4:e';
const ENCODED = encodeURIComponent(PASSWORD);
/**
 * A second one, for a URL written without encoding that still parses: `redis://app:Zq@kX9…/…@host`
 * reads as password "Zq", host "kx9gh2wqplm", database "/mWvBtL4eRtY@host" — a client would print
 * the host in "getaddrinfo ENOTFOUND kx9gh2wqplm".
 */
const MISREAD = 'Zq@kX9Gh2wQpLm/mWvBtL4eRtY';

/** Every form a secret could leak in, and every 8-character piece of it (compared ignoring case). */
function secretForms(secret: string, user = 'app'): string[] {
  const encoded = encodeURIComponent(secret);
  const forms = [
    secret,
    encoded,
    encodeURI(secret),
    Buffer.from(secret).toString('base64'),
    Buffer.from(secret).toString('base64url'),
    Buffer.from(`${user}:${secret}`).toString('base64'),
    Buffer.from(`:${secret}`).toString('base64'),
    JSON.stringify(secret).slice(1, -1),
  ];
  for (const text of [secret, encoded]) {
    for (let i = 0; i + 8 <= text.length; i++) forms.push(text.slice(i, i + 8).toLowerCase());
  }
  return [...new Set(forms)];
}

/** Everything the test saw, by where it saw it. */
const seen: Array<{ where: string; text: string }> = [];
const note = (where: string, value: unknown) =>
  seen.push({
    where,
    text: typeof value === 'string' ? value : inspect(value, { depth: 20, showHidden: true }),
  });

/** An error, every way it can be shown or walked. */
function noteError(where: string, error: unknown): void {
  note(`${where}: inspect`, error);
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 8; depth++) {
    const at = `${where}${depth ? ` (cause ${depth})` : ''}`;
    note(`${at}: String`, String(current));
    note(`${at}: JSON`, safeJson(current));
    if (current instanceof Error) {
      note(`${at}: message`, current.message);
      note(`${at}: stack`, current.stack ?? '');
      for (const key of Object.getOwnPropertyNames(current)) {
        note(`${at}: .${key}`, (current as unknown as Record<string, unknown>)[key]);
      }
      if (current instanceof AggregateError) {
        for (const [i, e] of current.errors.entries()) noteError(`${at} [${i}]`, e);
      }
    }
    current = (current as { cause?: unknown }).cause;
  }
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? '';
  } catch (error) {
    return `unserializable: ${(error as Error).message}`;
  }
}

/** The call's rejection, noted; a resolved call notes its value. */
async function provoke(where: string, call: () => Promise<unknown>): Promise<unknown> {
  try {
    const value = await call();
    note(`${where}: value`, value);
    return value;
  } catch (error) {
    noteError(where, error);
    return error;
  }
}

const POINT_EVENTS = ['lead', 'takeover', 'renew', 'lease-lost', 'done', 'fail', 'reset'];
const logger: OnceLogger = {
  debug: (fields, message) => note('logger.debug', [fields, message]),
  info: (fields, message) => note('logger.info', [fields, message]),
  warn: (fields, message) => note('logger.warn', [fields, message]),
  error: (fields, message) => note('logger.error', [fields, message]),
};

let main: RedisServer;
let pausable: RedisServer;
let certs: Certificates | undefined;
let tls: TlsRedis | undefined;
let closed: number;
const onces: Once[] = [];
const undo: Array<() => unknown> = [];

function open(redis: RedisSpec, extra: Partial<Parameters<typeof createOnce>[0]> = {}): Once {
  const once = createOnce({
    redis,
    namespace: `sec-${randomUUID()}`,
    logger,
    redisTimeoutMs: 1000,
    ...extra,
  });
  onces.push(once);
  return once;
}

async function addUser(
  server: RedisServer,
  name: string,
  password: string,
  ...rules: string[]
): Promise<void> {
  const admin = server.client();
  await admin.call('ACL', 'SETUSER', name, 'reset', 'on', `>${password}`, ...rules);
}

const url = (server: { port: number }, user: string, password = PASSWORD) =>
  `redis://${user}:${encodeURIComponent(password)}@127.0.0.1:${server.port}`;

beforeAll(async () => {
  [main, pausable, closed] = await Promise.all([
    startRedis({ name: 'secrets' }),
    startRedis({ name: 'secrets-paused' }),
    closedPort(),
  ]);
  if (hasOpenssl) {
    certs = makeCertificates();
    tls = await startTlsRedis('secrets-tls', certs, certs.server);
    await addUser(tls.server, 'app', PASSWORD, '~*', '&*', '+@all');
  }
  await addUser(main, 'app', PASSWORD, '~*', '&*', '+@all');
  await addUser(main, 'wrongpass', 'not-the-secret', '~*', '&*', '+@all');
  await addUser(main, 'limited', PASSWORD, '~other:*', '&other:*', '+@all');
  await addUser(pausable, 'app', PASSWORD, '~*', '&*', '+@all');
  // Everything published on our channels, and every tracing context.
  for (const name of POINT_EVENTS) {
    const listener = (message: unknown) => note(`channel ${name}`, message);
    diagnostics.subscribe(`redis-once:${name}`, listener);
    undo.push(() => diagnostics.unsubscribe(`redis-once:${name}`, listener));
  }
  for (const name of ['run', 'wait']) {
    const handlers = Object.fromEntries(
      ['start', 'end', 'asyncStart', 'asyncEnd', 'error'].map((event) => [
        event,
        (context: unknown) => note(`tracing ${name}.${event}`, context),
      ]),
    );
    diagnostics.tracingChannel(`redis-once:${name}`).subscribe(handlers as never);
    undo.push(() => diagnostics.tracingChannel(`redis-once:${name}`).unsubscribe(handlers as never));
  }
}, 60_000);
afterAll(async () => {
  for (const step of undo.splice(0).reverse()) await step();
  await Promise.all(onces.splice(0).map((once) => once.close()));
  await Promise.all([main?.stop(), pausable?.stop(), tls?.server.stop()]);
  certs?.remove();
});

describe('no secret anywhere', () => {
  it('after every failure we can provoke, with the password in the URL and in callers’ clients', async () => {
    // DEBUG=redis-once*, as a user would turn it on (the debug package writes each line through log).
    const debugNamespaces = createDebug.disable();
    const debugLog = createDebug.log;
    createDebug.log = (...args: unknown[]) => note('debug', format(...args));
    createDebug.enable('redis-once*');
    let printed = '';
    const capture = (chunk: unknown) => {
      printed += String(chunk);
      return true;
    };
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(capture as never);
    const consoles = (['log', 'info', 'warn', 'error', 'debug'] as const).map((level) =>
      vi.spyOn(console, level).mockImplementation((...args: unknown[]) => capture(`${format(...args)}\n`)),
    );
    try {
      await failEveryWay();
    } finally {
      stderr.mockRestore();
      for (const spy of consoles) spy.mockRestore();
      createDebug.log = debugLog;
      createDebug.enable(debugNamespaces);
    }
    note('printed', printed);

    // The test did see what it looked for: failures of each kind, events and debug lines.
    const all = seen.map((s) => s.text).join('\n');
    for (const expected of [
      /did not answer|not up|within \d+ ms/,
      /refused the credentials/,
      /signed by a CA Node does not trust/,
      /for this ACL user/,
      /OnceTimeoutError/,
      /LeaseLostError/,
      /fn failed on purpose/,
      /Only \d of 3 Redis masters/,
      /percent-encode/,
    ]) {
      if (expected.source.includes('CA') && !tls) continue;
      expect(all).toMatch(expected);
    }
    expect(seen.some((s) => s.where.startsWith('channel '))).toBe(true);
    expect(seen.some((s) => s.where.startsWith('tracing '))).toBe(true);
    expect(seen.some((s) => s.where === 'debug')).toBe(true);
    expect(seen.some((s) => s.where.startsWith('status'))).toBe(true);

    const forms = [...secretForms(PASSWORD), ...secretForms(MISREAD)];
    const leaks = seen.flatMap(({ where, text }) =>
      forms
        .filter((form) => text.includes(form) || text.toLowerCase().includes(form))
        .map((form) => `${where} holds ${JSON.stringify(form)}: ${text.slice(0, 300)}`),
    );
    expect(leaks).toEqual([]);
  }, 60_000);
});

async function failEveryWay(): Promise<void> {
  // Unreachable: nothing listens on the port.
  const unreachable = open(url({ port: closed }, 'app'), { redisTimeoutMs: 300 });
  await provoke('unreachable run', () => unreachable.run('k', () => 'v'));
  await provoke('unreachable status', () => unreachable.status('k'));
  await provoke('unreachable reset', () => unreachable.reset('k'));

  // The secret is the password the server refuses.
  const wrong = open(url(main, 'wrongpass'));
  await provoke('wrong password run', () => wrong.run('k', () => 'v'));
  await provoke('wrong password wait', () => wrong.wait('k'));
  await provoke('wrong password status', () => wrong.status('k'));
  await provoke('wrong password reset', () => wrong.reset('k', { force: true }));

  // A caller's clients, with the password in their options.
  const ioredis6 = new Redis6({
    port: main.port,
    host: '127.0.0.1',
    username: 'wrongpass',
    password: PASSWORD,
  });
  const ioredis5 = new Redis5({
    port: main.port,
    host: '127.0.0.1',
    username: 'wrongpass',
    password: PASSWORD,
  });
  for (const client of [ioredis6, ioredis5]) {
    // The client's own error events are its own (ioredis puts AUTH's arguments on them): not ours to judge.
    client.on('error', () => {});
    undo.push(() => client.disconnect());
  }
  for (const [name, client] of [
    ['ioredis 6', ioredis6],
    ['ioredis 5', ioredis5],
  ] as const) {
    const once = open(client as never);
    await provoke(`${name} wrong password run`, () => once.run('k', () => 'v'));
    await provoke(`${name} wrong password status`, () => once.status('k'));
  }

  // A caller's node-redis client, connected with the password, then refused when it reconnects.
  const admin = main.client();
  await addUser(main, 'rot', PASSWORD, '~*', '&*', '+@all');
  const nodeRedis = createClient6({ url: url(main, 'rot') });
  nodeRedis.on('error', () => {});
  await nodeRedis.connect();
  undo.push(() => nodeRedis.isOpen && nodeRedis.destroy());
  const viaNodeRedis = open(nodeRedis as never);
  await provoke('node-redis run', () => viaNodeRedis.run('fine', () => 'ran'));
  await provoke('node-redis status', async () =>
    note('status node-redis', await viaNodeRedis.status('fine')),
  );
  await admin.call('ACL', 'SETUSER', 'rot', 'resetpass', '>another-password');
  const refused = new Promise((resolve) => nodeRedis.once('error', resolve));
  await admin.call('CLIENT', 'KILL', 'USER', 'rot');
  await refused;
  await provoke('node-redis rotated status', () => viaNodeRedis.status('k'));
  await provoke('node-redis rotated run', () => viaNodeRedis.run('k', () => 'v'));

  // TLS refused (no CA), the password in the URL.
  if (tls) {
    const tlsUrl = `rediss://app:${ENCODED}@127.0.0.1:${tls.tlsPort}`;
    const refusedTls = open(tlsUrl);
    await provoke('tls run', () => refusedTls.run('k', () => 'v'));
    await provoke('tls status', () => refusedTls.status('k'));
  }

  // NOPERM: the user's keys and channels are another namespace's.
  const noperm = open(url(main, 'limited'));
  await provoke('noperm run', () => noperm.run('k', () => 'v'));
  await provoke('noperm status', () => noperm.status('k'));
  await provoke('noperm reset', () => noperm.reset('k'));

  // Works, then: a failing fn, failed everywhere, a wait that times out, a lost lease, status.
  const good = open(url(main, 'app'), { maxAttempts: 1 });
  const namespace = `sec-${randomUUID()}`;
  const good2 = open(url(main, 'app'), { maxAttempts: 1, namespace });
  const good3 = open(url(main, 'app'), { maxAttempts: 1, namespace });
  await provoke('failing fn', () =>
    good.run('fails', () => {
      throw new Error('fn failed on purpose');
    }),
  );
  await provoke('failed elsewhere', () => good.run('fails', () => 'never'));
  await provoke('status failed', async () => note('status failed', await good.status('fails')));
  await provoke('done', () => good.run('works', () => ({ ok: true })));
  await provoke('status done', async () => note('status done', await good.status('works')));
  let started!: () => void;
  const running = new Promise<void>((resolve) => (started = resolve));
  const leader = provoke('lost lease', () =>
    good2.run(
      'held',
      (ctx) =>
        new Promise((_, reject) => {
          started();
          ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason));
        }),
    ),
  );
  await running;
  await provoke('status running', async () => note('status running', await good3.status('held')));
  await provoke('wait times out', () => good3.wait('held', { waitTimeoutMs: 200 }));
  await provoke('forced reset', () => good3.reset('held', { force: true }));
  await leader;

  // A Redis that stops answering (SIGSTOP): the bound, with the password in the URL.
  if (canInjectFaults) {
    const stalled = open(url(pausable, 'app'), { redisTimeoutMs: 300 });
    await provoke('paused: warm', () => stalled.run('warm', () => 'v'));
    await pausable.pause();
    try {
      await provoke('paused status', () => stalled.status('k'));
      await provoke('paused run', () => stalled.run('k', () => 'v'));
    } finally {
      await pausable.resume();
    }
  }

  // A quorum without a majority: one master refuses the password, one is unreachable.
  const quorum = createOnce({
    quorum: [url(main, 'wrongpass'), url({ port: closed }, 'app'), url(pausable, 'app')],
    namespace: `sec-${randomUUID()}`,
    logger,
    redisTimeoutMs: 300,
  });
  onces.push(quorum);
  await provoke('quorum run', () => quorum.run('k', () => 'v'));
  await provoke('quorum status', () => quorum.status('k'));

  // A password with / ? # @ not percent-encoded: a client would misread where it ends.
  for (const written of [
    `redis://app:${PASSWORD}@127.0.0.1:${main.port}`,
    `rediss://app:${PASSWORD}@127.0.0.1:${main.port}/0`,
    `redis://:${PASSWORD}@127.0.0.1:${main.port}`,
    `redis://app:${MISREAD}@127.0.0.1:${main.port}`,
  ]) {
    await provoke('misread URL', () => open(written, { redisTimeoutMs: 300 }).status('k'));
  }
  await Promise.all(onces.splice(0).map((once) => once.close()));
}
