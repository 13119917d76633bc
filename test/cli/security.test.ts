/**
 * The CLI and secrets, refusals and hostile input, with real redis-server processes:
 *
 * - the password given with --redis or REDIS_URL never shows on stdout or stderr, nor in `status
 *   --json`, whatever fails (unreachable, a wrong password, TLS refused, NOPERM, a wait timing out, a
 *   failing command that prints the URL itself), with --verbose and with DEBUG=redis-once*,ioredis:*;
 * - each refusal exits 69 at once with what to change;
 * - `doctor` as the ACL user managed services hand out: nothing printed but its findings;
 * - `list` matches a namespace literally: glob characters in it select no other namespace.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/exit-codes.js';
import { createOnce } from '../../src/index.js';
import { type RedisServer, startRedis } from '../helpers/redis-server.js';
import {
  type Certificates,
  hasOpenssl,
  makeCertificates,
  startTlsRedis,
  type TlsRedis,
} from '../helpers/tls.js';
import { closedPort } from '../helpers/topologies.js';
import { type Cli, runCli } from './cli.js';

/** As in test/integration/acl.test.ts: all but @dangerous and @admin, the namespace's keys and channels. */
function managedServiceRule(ns: string): string[] {
  return ['resetkeys', `~${ns}:*`, 'resetchannels', `&${ns}:*`, '+@all', '-@dangerous', '-@admin'];
}

const PASSWORD = 'Zq7/kX9?mW#2@vB%tL4:e';
const ENCODED = encodeURIComponent(PASSWORD);

function secretForms(): string[] {
  const forms = [
    PASSWORD,
    ENCODED,
    Buffer.from(PASSWORD).toString('base64'),
    Buffer.from(`app:${PASSWORD}`).toString('base64'),
  ];
  for (const text of [PASSWORD, ENCODED]) {
    for (let i = 0; i + 8 <= text.length; i++) forms.push(text.slice(i, i + 8).toLowerCase());
  }
  return [...new Set(forms)];
}

function leaksIn(text: string): string[] {
  return secretForms().filter((form) => text.includes(form) || text.toLowerCase().includes(form));
}

let redis: RedisServer;
let admin: Redis;
let certs: Certificates | undefined;
let tls: TlsRedis | undefined;
let closed: number;

const url = (port: number, user: string) => `redis://${user}:${ENCODED}@127.0.0.1:${port}`;

beforeAll(async () => {
  [redis, closed] = await Promise.all([startRedis({ name: 'cli-security' }), closedPort()]);
  admin = redis.client();
  for (const [name, password, ...rules] of [
    ['app', PASSWORD, '~*', '&*', '+@all'],
    ['wrongpass', 'not-the-secret', '~*', '&*', '+@all'],
    ['limited', PASSWORD, '~other:*', '&other:*', '+@all'],
  ] as const) {
    await admin.call('ACL', 'SETUSER', name, 'reset', 'on', `>${password}`, ...rules);
  }
  if (hasOpenssl) {
    certs = makeCertificates();
    tls = await startTlsRedis('cli-security-tls', certs, certs.server);
  }
}, 60_000);
afterAll(async () => {
  await Promise.all([redis?.stop(), tls?.server.stop()]);
  certs?.remove();
});

describe('the password never shows', () => {
  /**
   * One CLI run: the URL by --redis with --verbose (stack traces, the library's debug lines), or by
   * REDIS_URL with DEBUG=redis-once*,ioredis:* (ioredis' debug lines print each command's arguments:
   * AUTH's password among them, unless masked).
   */
  function cli(
    args: string[],
    redisUrl: string,
    how: 'flag' | 'env',
  ): Promise<Cli & { result: { code: number | null } }> {
    const [command, ...rest] = args;
    return how === 'flag'
      ? runCli([command!, '--redis', redisUrl, '--verbose', ...rest])
      : runCli(args, { env: { REDIS_URL: redisUrl, DEBUG: 'redis-once*,ioredis:*' } });
  }

  const HOWS = ['flag', 'env'] as const;

  /** `jobs`, at most `limit` at a time (two cores, shared). */
  async function inTurns<T>(jobs: Array<() => Promise<T>>, limit = 4): Promise<T[]> {
    const results: T[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: limit }, async () => {
        while (next < jobs.length) {
          const i = next++;
          results[i] = await jobs[i]!();
        }
      }),
    );
    return results;
  }

  it('after each failure, on stdout and stderr: by --redis with --verbose, by REDIS_URL with DEBUG', async () => {
    const namespace = `cli-sec-${randomUUID()}`;
    const ns = ['--namespace', namespace];
    const good = url(redis.port, 'app');
    const cases: Array<{
      what: string;
      args: (how: string) => string[];
      url: string;
      code: number;
      says: RegExp;
    }> = [
      {
        what: 'unreachable',
        args: () => ['status', '--key', 'k', '--redis-timeout', '300ms', ...ns],
        url: url(closed, 'app'),
        code: EXIT.REDIS_UNAVAILABLE,
        says: /is unreachable/,
      },
      {
        what: 'a wrong password (run)',
        args: () => ['run', '--key', 'k', ...ns, '--', 'true'],
        url: url(redis.port, 'wrongpass'),
        code: EXIT.REDIS_UNAVAILABLE,
        says: /refused the credentials \(WRONGPASS .*check the user and password in --redis or REDIS_URL/,
      },
      {
        what: 'a wrong password (list)',
        args: () => ['list', ...ns],
        url: url(redis.port, 'wrongpass'),
        code: EXIT.REDIS_UNAVAILABLE,
        says: /refused the credentials/,
      },
      {
        what: 'a wrong password (doctor)',
        args: () => ['doctor', ...ns],
        url: url(redis.port, 'wrongpass'),
        code: EXIT.REDIS_UNAVAILABLE,
        says: /refused the credentials/,
      },
      {
        what: 'NOPERM',
        args: () => ['status', '--key', 'k', ...ns],
        url: url(redis.port, 'limited'),
        code: EXIT.REDIS_UNAVAILABLE,
        says: /refused the read script for this ACL user/,
      },
      {
        what: 'a wait timing out',
        args: () => ['wait', '--key', 'never', '--timeout', '300ms', ...ns],
        url: good,
        code: EXIT.WAIT_TIMEOUT,
        says: /gave up waiting/,
      },
      {
        what: 'a failing command',
        args: (how) => [
          'run',
          '--key',
          `fails-${how}-${randomUUID()}`,
          '--max-attempts',
          '1',
          ...ns,
          '--',
          'sh',
          '-c',
          'echo broken >&2; exit 3',
        ],
        url: good,
        code: 3,
        says: /failed here: the command \(sh\) exited with code 3/,
      },
    ];
    if (tls) {
      cases.push({
        what: 'TLS refused',
        args: () => ['run', '--key', 'k', ...ns, '--', 'true'],
        url: `rediss://app:${ENCODED}@127.0.0.1:${tls.tlsPort}`,
        code: EXIT.REDIS_UNAVAILABLE,
        says: /TLS to Redis at rediss:\/\/app:\*\*\*@127\.0\.0\.1:\d+ failed/,
      });
    }
    const runs = await inTurns(
      cases.flatMap((c) =>
        HOWS.map((how) => async () => ({ c, how, cli: await cli(c.args(how), c.url, how) })),
      ),
    );
    for (const { c, how, cli: ran } of runs) {
      const where = `${c.what} (${how})`;
      expect(ran.result.code, `${where}: ${ran.stderr}`).toBe(c.code);
      expect(ran.stderr, where).toMatch(c.says);
      if (how === 'flag') expect(ran.stderr, where).toMatch(/\n\s+at /);
      expect(leaksIn(ran.stdout + ran.stderr), `${where}: ${ran.output}`).toEqual([]);
    }
    // DEBUG did print debug lines, ours and ioredis'.
    expect(runs.some(({ how, cli: ran }) => how === 'env' && /redis-once:\w+ /.test(ran.stderr))).toBe(true);
    expect(runs.some(({ how, cli: ran }) => how === 'env' && /ioredis:\w+ /.test(ran.stderr))).toBe(true);
  }, 60_000);

  it('a command that prints REDIS_URL itself: its stored error and every reader are masked', async () => {
    const namespace = `cli-sec-${randomUUID()}`;
    const key = `prints-${randomUUID()}`;
    const good = url(redis.port, 'app');
    const flags = ['--key', key, '--namespace', namespace];
    const ran = await runCli(
      [
        'run',
        ...flags,
        '--max-attempts',
        '1',
        '--',
        'sh',
        '-c',
        'echo "connecting to $REDIS_URL" >&2; exit 4',
      ],
      { env: { REDIS_URL: good } },
    );
    expect(ran.result.code).toBe(4);
    // The command's own stderr passes through as it wrote it; what redis-once says of it is masked.
    const ours = ran.stderr.split('\n').filter((line) => line.startsWith('redis-once'));
    expect(ours.join('\n')).toMatch(/connecting to redis:\/\/app:\*\*\*@127\.0\.0\.1/);
    expect(leaksIn(ours.join('\n'))).toEqual([]);
    const status = await runCli(['status', ...flags, '--json'], { env: { REDIS_URL: good } });
    expect(JSON.parse(status.stdout)).toMatchObject({
      state: 'failed',
      error: { message: expect.stringMatching(/connecting to redis:\/\/app:\*\*\*@/) },
    });
    const waited = await runCli(['wait', ...flags, '--max-attempts', '1'], { env: { REDIS_URL: good } });
    expect(waited.result.code).toBe(EXIT.FAILED_ELSEWHERE);
    for (const out of [status, waited]) expect(leaksIn(out.stdout + out.stderr)).toEqual([]);
    // Another reader of the state, with no secret of its own to mask: the state itself is clean.
    const once = createOnce({ redis: redis.url, namespace });
    try {
      expect(leaksIn(JSON.stringify(await once.status(key)))).toEqual([]);
    } finally {
      await once.close();
    }
  });
});

describe('doctor as the ACL user managed services hand out', () => {
  it('exits 0 with its findings (INFO and CONFIG unknown), nothing else printed', async () => {
    const namespace = `cli-managed-${randomUUID()}`;
    const user = `managed-${namespace.slice(12, 20)}`;
    await admin.call('ACL', 'SETUSER', user, 'reset', 'on', '>managed-pw', ...managedServiceRule(namespace));
    const doctor = await runCli([
      'doctor',
      '--redis',
      `redis://${user}:managed-pw@127.0.0.1:${redis.port}`,
      '--namespace',
      namespace,
      '--json',
    ]);
    expect(doctor.result.code, doctor.stderr).toBe(EXIT.OK);
    // ioredis' ready check would print "Skipping the ready check because INFO command fails".
    expect(doctor.stderr).toBe('');
    const findings = JSON.parse(doctor.stdout) as Array<{ check: string; level: string }>;
    expect(findings.find((f) => f.check === 'permissions')).toMatchObject({ level: 'ok' });
    expect(findings.find((f) => f.check === 'version')).toMatchObject({ level: 'unknown' });
    expect(findings.find((f) => f.check === 'eviction')).toMatchObject({ level: 'unknown' });
  });
});

describe('list matches a namespace literally', () => {
  it('glob characters in a namespace select no other namespace', async () => {
    const id = randomUUID().slice(0, 8);
    const namespaces = ['*', '?', '[a-z]', '[^x]', '\\', '\\*', 'a', 'b', 'a*', 'a?', '**'].map(
      (n) => `${id}${n}`,
    );
    namespaces.push(`${id}`);
    for (const namespace of namespaces) {
      const once = createOnce({ redis: redis.url, namespace });
      try {
        await once.run(`key-of-${namespace}`, () => namespace);
      } finally {
        await once.close();
      }
    }
    const listed = await Promise.all(
      namespaces.map(async (namespace) => {
        const cli = await runCli(['list', '--redis', redis.url, '--namespace', namespace, '--json']);
        expect(cli.result.code, cli.stderr).toBe(EXIT.OK);
        return (JSON.parse(cli.stdout) as Array<{ key: string }>).map((k) => k.key);
      }),
    );
    expect(listed).toEqual(namespaces.map((namespace) => [`key-of-${namespace}`]));
  });
});
