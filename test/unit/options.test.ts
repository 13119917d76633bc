/**
 * Option and input validation through the public API, with no Redis: every check runs before the first
 * command, so an instance pointed at a closed port (or a lazy client that never connects) is enough.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createOnce,
  LeaseLostError,
  type Once,
  OnceAbortError,
  OnceBusyError,
  OnceClosedError,
  OnceError,
  OnceFailedError,
  OnceForeignValueError,
  OnceInputError,
  type OnceOptions,
  OnceReentrantError,
  OnceSerializationError,
  OnceTimeoutError,
  RedisUnavailableError,
  type RunOptions,
} from '../../src/index.js';
import { checkKey } from '../../src/options.js';

/** Nothing listens on port 1: any command sent there would fail, so a passing test sent none. */
const NOWHERE = 'redis://127.0.0.1:1';
const fn = async () => 'value';

const opened: Once[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((once) => once.close()));
});

/** A Once that is closed after the test. */
function open(options: Partial<OnceOptions> = {}): Once {
  const once = createOnce({ redis: NOWHERE, namespace: `opts-${randomUUID()}`, ...options });
  opened.push(once);
  return once;
}

/** The error `action` throws or rejects with (sync or async), or fails the test. */
async function errorOf(action: () => unknown): Promise<unknown> {
  try {
    await action();
  } catch (error) {
    return error;
  }
  throw new Error('expected an error, but none was thrown');
}

async function expectInputError(action: () => unknown, mentions: RegExp): Promise<void> {
  const error = await errorOf(action);
  expect(error).toBeInstanceOf(OnceInputError);
  expect((error as Error).message).toMatch(mentions);
}

/** `'😀'` is 4 bytes of UTF-8 but 2 UTF-16 code units: length and byte count differ. */
const EMOJI = '😀';

describe('keys', () => {
  it('refuses an empty key', async () => {
    const once = open();
    await expectInputError(() => once.run('', fn), /key must not be empty/);
    await expectInputError(() => once.runDetailed('', fn), /key/);
    await expectInputError(() => once.wrap('', fn), /key/);
    await expectInputError(() => once.status(''), /key/);
    await expectInputError(() => once.reset(''), /key/);
  });

  it('refuses a key of 1,025 bytes, naming the byte count and the limit', async () => {
    const once = open();
    await expectInputError(() => once.run('k'.repeat(1025), fn), /key is 1025 bytes.*at most 1024/);
    // Multi-byte: 256 emoji are 1,024 bytes, one more ASCII character makes 1,025.
    await expectInputError(() => once.run(`${EMOJI.repeat(256)}k`, fn), /key is 1025 bytes/);
  });

  it('accepts exactly 1,024 bytes of multi-byte UTF-8', () => {
    const emoji = EMOJI.repeat(256);
    const euro = `${'€'.repeat(341)}k`; // 3 × 341 + 1
    const accented = 'é'.repeat(512);
    for (const key of [emoji, euro, accented, 'k'.repeat(1024)]) {
      expect(Buffer.byteLength(key, 'utf8')).toBe(1024);
      expect(checkKey(key)).toBe(key);
    }
    // The public API agrees: wrap checks the key now, and sends nothing until called.
    expect(typeof open().wrap(emoji, fn)).toBe('function');
  });

  it('refuses a key that is not a string, saying what it got', async () => {
    const once = open();
    for (const key of [42, null, undefined, { key: 'k' }, ['k'], Symbol('k')]) {
      await expectInputError(() => once.run(key as unknown as string, fn), /key must be a string/);
    }
  });

  it('refuses a key with a lone surrogate, which has no UTF-8 encoding', async () => {
    const once = open();
    for (const key of ['\uD800', 'a\uDFFFb', `${EMOJI}\uD83D`]) {
      await expectInputError(() => once.run(key, fn), /key must be valid UTF-8.*lone surrogate/);
    }
    // A proper surrogate pair is fine.
    expect(checkKey(`a${EMOJI}b`)).toBe(`a${EMOJI}b`);
  });
});

describe('fn', () => {
  it('refuses a non-function fn with a TypeError naming fn', async () => {
    const once = open();
    for (const notFn of [undefined, null, 'migrate', 42, {}, Promise.resolve(1)]) {
      const error = await errorOf(() => once.run('k', notFn as unknown as () => void));
      expect(error).toBeInstanceOf(TypeError);
      expect(error).not.toBeInstanceOf(OnceError);
      expect((error as Error).message).toMatch(/fn must be a function/);
      expect(await errorOf(() => once.runDetailed('k', notFn as unknown as () => void))).toBeInstanceOf(
        TypeError,
      );
      expect(await errorOf(() => once.wrap('k', notFn as unknown as () => void))).toBeInstanceOf(TypeError);
    }
  });
});

const BAD_DURATIONS: Array<[string, unknown]> = [
  ['negative', -1],
  ['NaN', Number.NaN],
  ['Infinity', Number.POSITIVE_INFINITY],
  ['-Infinity', Number.NEGATIVE_INFINITY],
  ['non-integer', 1.5],
  ['zero', 0],
  ['beyond what setTimeout can wait', 2 ** 31],
  ['a string', '30s'],
];

describe('durations given to createOnce', () => {
  for (const option of ['leaseMs', 'waitTimeoutMs', 'doneTtlMs', 'redisTimeoutMs'] as const) {
    for (const [what, value] of BAD_DURATIONS) {
      // No timer waits on doneTtlMs (Redis expires the state): it may be longer than a timer can wait.
      if (option === 'doneTtlMs' && value === 2 ** 31) continue;
      it(`refuses ${option} ${what} (${String(value)}), naming ${option}`, async () => {
        await expectInputError(
          () => createOnce({ redis: NOWHERE, [option]: value } as OnceOptions),
          new RegExp(`${option} must be a positive integer of milliseconds`),
        );
      });
    }
  }

  it('accepts positive integer durations up to 2^31 - 1, and a done TTL of any safe length', async () => {
    open({ leaseMs: 100, waitTimeoutMs: 2 ** 31 - 1, doneTtlMs: 60_000, redisTimeoutMs: 250 });
    open({ doneTtlMs: 30 * 24 * 3600_000 });
    await expectInputError(
      () => createOnce({ redis: NOWHERE, doneTtlMs: 2 ** 53 } as OnceOptions),
      /doneTtlMs must be a positive integer of milliseconds/,
    );
  });

  it('refuses a lease too short to renew (under 100 ms), naming the bound', async () => {
    expect(() => open({ leaseMs: 99 })).toThrow(/leaseMs must be at least 100 ms/);
    await expectInputError(() => open().run('k', fn, { leaseMs: 50 }), /leaseMs must be at least 100 ms/);
  });

  it('refuses a quorum that names one master twice (it would fake a majority)', () => {
    expect(() =>
      createOnce({ quorum: ['redis://127.0.0.1:1', 'redis://127.0.0.1:2', 'redis://127.0.0.1:1'] }),
    ).toThrow(OnceInputError);
    expect(() => createOnce({ quorum: ['redis://127.0.0.1:1', 'redis://127.0.0.1:1/0'] })).toThrow(
      /given twice/,
    );
  });
});

describe('durations given to run', () => {
  for (const option of ['leaseMs', 'waitTimeoutMs', 'doneTtlMs'] as const) {
    for (const [what, value] of BAD_DURATIONS) {
      if (option === 'doneTtlMs' && value === 2 ** 31) continue;
      it(`refuses ${option} ${what} (${String(value)}), naming ${option}`, async () => {
        const once = open();
        const options = { [option]: value } as RunOptions;
        await expectInputError(
          () => once.run('k', fn, options),
          new RegExp(`${option} must be a positive integer of milliseconds`),
        );
        await expectInputError(() => once.wrap('k', fn, options), new RegExp(option));
      });
    }
  }

  it('refuses redisTimeoutMs per call: it is an option of createOnce only', async () => {
    const once = open();
    await expectInputError(
      () => once.run('k', fn, { redisTimeoutMs: 100 } as RunOptions),
      /unknown option "redisTimeoutMs"/,
    );
  });
});

describe('maxAttempts', () => {
  for (const value of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '3']) {
    it(`refuses maxAttempts ${String(value)} in createOnce and in run`, async () => {
      await expectInputError(
        () => createOnce({ redis: NOWHERE, maxAttempts: value as number }),
        /maxAttempts must be an integer of at least 1/,
      );
      const once = open();
      await expectInputError(
        () => once.run('k', fn, { maxAttempts: value as number }),
        /maxAttempts must be an integer of at least 1/,
      );
    });
  }
});

describe('unknown options', () => {
  it('refuses a typo in createOnce, naming the unknown option and listing the known ones', async () => {
    await expectInputError(
      () => createOnce({ redis: NOWHERE, leaseMS: 1000 } as unknown as OnceOptions),
      /createOnce: unknown option "leaseMS"; known options: .*leaseMs/,
    );
  });

  it('refuses a typo in run, naming the unknown option', async () => {
    const once = open();
    await expectInputError(
      () => once.run('k', fn, { leaseMS: 1000 } as unknown as RunOptions),
      /run: unknown option "leaseMS"; known options: .*leaseMs/,
    );
    await expectInputError(
      () => once.run('k', fn, { waitTimeout: 1000 } as unknown as RunOptions),
      /"waitTimeout"/,
    );
  });

  it('refuses run options that are not an object, and a signal that is not an AbortSignal', async () => {
    const once = open();
    await expectInputError(() => once.run('k', fn, 5 as unknown as RunOptions), /options must be an object/);
    await expectInputError(() => once.run('k', fn, null as unknown as RunOptions), /options must be/);
    await expectInputError(
      () => once.run('k', fn, { signal: { aborted: false } as unknown as AbortSignal }),
      /`signal` must be an AbortSignal/,
    );
  });

  it('refuses reset options that are not an object, and a force that is not a boolean', async () => {
    const once = open();
    await expectInputError(() => once.reset('k', 'force' as unknown as { force: boolean }), /options/);
    await expectInputError(
      () => once.reset('k', { force: 'yes' } as unknown as { force: boolean }),
      /`force` must be a boolean/,
    );
  });
});

describe('where Redis is', () => {
  it('refuses options that are not an object', async () => {
    await expectInputError(
      () => createOnce(undefined as unknown as OnceOptions),
      /options must be an object/,
    );
    await expectInputError(() => createOnce('redis://x' as unknown as OnceOptions), /options must be/);
  });

  it('refuses neither redis nor quorum', async () => {
    await expectInputError(() => createOnce({} as OnceOptions), /exactly one of `redis`.*`quorum`/);
    await expectInputError(() => createOnce({ namespace: 'x' } as OnceOptions), /`redis`.*`quorum`/);
  });

  it('refuses both redis and quorum', async () => {
    await expectInputError(
      () => createOnce({ redis: NOWHERE, quorum: [NOWHERE, NOWHERE, NOWHERE] }),
      /exactly one of `redis`.*`quorum`/,
    );
  });

  it('refuses an empty quorum or one that is not an array', async () => {
    await expectInputError(() => createOnce({ quorum: [] }), /`quorum` must be a non-empty array/);
    await expectInputError(
      () => createOnce({ quorum: NOWHERE as unknown as string[] }),
      /`quorum` must be a non-empty array/,
    );
  });

  it('refuses a redis that is neither a client, a URL nor { cluster }', async () => {
    await expectInputError(() => createOnce({ redis: 6379 as unknown as string }), /redis must be/);
    await expectInputError(() => createOnce({ quorum: [NOWHERE, 6379 as unknown as string] }), /redis/);
  });

  it('refuses a URL that is not redis:// or rediss://', async () => {
    await expectInputError(() => createOnce({ redis: 'http://127.0.0.1:6379' }), /redis:.*redis:\/\//);
  });
});

describe('namespace and nodeId', () => {
  for (const namespace of ['a{b}', 'app}', '{app', 'my app', '', 'n'.repeat(129)]) {
    it(`refuses the namespace ${JSON.stringify(namespace.slice(0, 20))}, naming namespace`, async () => {
      await expectInputError(
        () => createOnce({ redis: NOWHERE, namespace }),
        /namespace must be 1 to 128 characters without spaces or braces/,
      );
    });
  }

  it('refuses an empty nodeId', async () => {
    await expectInputError(() => createOnce({ redis: NOWHERE, nodeId: '' }), /nodeId/);
  });
});

describe('validation sends nothing to Redis', () => {
  it('leaves a lazy caller-owned client unconnected through every refused call, and open after close', async () => {
    const client = new Redis(NOWHERE, { lazyConnect: true, enableOfflineQueue: false });
    client.on('error', () => {});
    try {
      const once = createOnce({ redis: client, namespace: `opts-${randomUUID()}` });
      await expectInputError(() => once.run('', fn), /key/);
      await expectInputError(() => once.run('k', fn, { leaseMs: -1 }), /leaseMs/);
      await expectInputError(() => once.status('k'.repeat(2000)), /key/);
      await expectInputError(() => once.reset('\uD800'), /key/);
      expect(await errorOf(() => once.run('k', 'fn' as unknown as () => void))).toBeInstanceOf(TypeError);
      once.wrap('k', fn, { waitTimeoutMs: 1000 });
      expect(client.status).toBe('wait');
      await once.close();
      // A client we were given is never closed by us.
      expect(client.status).toBe('wait');
    } finally {
      client.disconnect();
    }
  });
});

describe('error classes', () => {
  const key = 'k';
  const cases: Array<[OnceError, string, string]> = [
    [new OnceInputError('bad'), 'OnceInputError', 'ONCE_INPUT'],
    [new LeaseLostError('lost', { key }), 'LeaseLostError', 'ONCE_LEASE_LOST'],
    [new OnceTimeoutError('slow', { key, timeoutMs: 5 }), 'OnceTimeoutError', 'ONCE_TIMEOUT'],
    [
      new OnceFailedError({ key, attempts: 3, lastErrorName: 'TypeError', lastErrorMessage: 'boom' }),
      'OnceFailedError',
      'ONCE_FAILED',
    ],
    [new RedisUnavailableError('down'), 'RedisUnavailableError', 'ONCE_REDIS_UNAVAILABLE'],
    [
      new OnceForeignValueError({ key, redisKey: 'ns:{k}:state', detail: 'a list' }),
      'OnceForeignValueError',
      'ONCE_FOREIGN_VALUE',
    ],
    [new OnceSerializationError('no', { key }), 'OnceSerializationError', 'ONCE_SERIALIZATION'],
    [new OnceAbortError({ key, cause: 'why' }), 'AbortError', 'ONCE_ABORTED'],
    [new OnceBusyError({ key, owner: 'node-1' }), 'OnceBusyError', 'ONCE_BUSY'],
    [new OnceClosedError(key), 'OnceClosedError', 'ONCE_CLOSED'],
    [new OnceReentrantError(key), 'OnceReentrantError', 'ONCE_REENTRANT'],
  ];

  for (const [error, name, code] of cases) {
    it(`${name} has the stable name ${name} and code ${code}, and is a OnceError`, () => {
      expect(error.name).toBe(name);
      expect(error.code).toBe(code);
      expect(error).toBeInstanceOf(OnceError);
      expect(error).toBeInstanceOf(Error);
      expect(String(error)).toMatch(new RegExp(`^${name}: `));
    });
  }

  it('OnceAbortError is named AbortError, like the platform, and carries the signal reason as cause', () => {
    const reason = new Error('user cancelled');
    const error = new OnceAbortError({ key, cause: reason });
    expect(error.name).toBe('AbortError');
    expect(error.cause).toBe(reason);
    expect(error.key).toBe(key);
  });

  it('a validation error from createOnce is a OnceInputError with code ONCE_INPUT', async () => {
    const error = await errorOf(() => createOnce({ redis: NOWHERE, leaseMs: -5 }));
    expect(error).toBeInstanceOf(OnceError);
    expect((error as OnceError).name).toBe('OnceInputError');
    expect((error as OnceError).code).toBe('ONCE_INPUT');
  });
});
