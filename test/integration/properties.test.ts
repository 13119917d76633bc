/**
 * Bad input, by property (fast-check), against a real redis-server: key names (unicode, braces,
 * colons, glob characters, up to and past 1,024 bytes, not strings at all), option values and the
 * values fn returns. Each case ends either in a correct run or in a clear typed error with Redis
 * unchanged — never a crash, a hang or a half-written state.
 */
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createOnce,
  type Once,
  OnceInputError,
  OnceSerializationError,
  type OnceStatus,
  OnceTimeoutError,
} from '../../src/index.js';
import { keyNames, MAX_KEY_BYTES } from '../../src/keys.js';
import { waitFor } from '../helpers/gate.js';
import { type RedisServer, startRedis } from '../helpers/redis-server.js';

let redis: RedisServer;
let once: Once;
let namespace: string;

beforeAll(async () => {
  redis = await startRedis({ name: 'properties' });
  namespace = `prop-${randomUUID()}`;
  once = createOnce({ redis: redis.url, namespace, leaseMs: 2000, redisTimeoutMs: 2000 });
});
afterAll(async () => {
  await once.close();
  await redis.stop();
});

/** Every Redis key of the namespace with its type and contents: "unchanged" is compared on this. */
async function snapshot(): Promise<string> {
  const admin = redis.client();
  const names = (await admin.keys(`${namespace}:*`)).sort();
  const parts = await Promise.all(
    names.map(async (name) => {
      const type = await admin.type(name);
      const body = type === 'hash' ? await admin.hgetall(name) : await admin.get(name);
      return `${name}=${type}:${JSON.stringify(body)}`;
    }),
  );
  return parts.join('\n');
}

const bytes = (text: string) => Buffer.byteLength(text, 'utf8');

/** Key names as callers write them, hostile ones included. */
const keyName = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({
    unit: fc.constantFrom('{', '}', ':', '*', '?', '[', ']', '\\', '#', ' ', 'a', 'é', '🙂'),
    maxLength: 24,
  }),
  fc.constantFrom('', '{', '}', '{}', '#x', 'a{b}c', '*', '[a-z]', 'a:b:{c}', '\u0000', '\n'),
  fc.integer({ min: MAX_KEY_BYTES - 3, max: MAX_KEY_BYTES + 3 }).map((n) => 'k'.repeat(n)),
  fc.integer({ min: 250, max: 260 }).map((n) => '🙂'.repeat(n)), // 4 bytes each: around 1,024
);

describe('key names, by property', () => {
  it('run either works (done, then cached) or refuses with OnceInputError, changing nothing', async () => {
    await fc.assert(
      fc.asyncProperty(keyName, async (key) => {
        const before = await snapshot();
        const valid = key.length > 0 && bytes(key) <= MAX_KEY_BYTES;
        const outcome = await once
          .runDetailed(key, () => ({ key }))
          .then(
            (result) => ({ result }),
            (error: unknown) => ({ error }),
          );
        if (!valid) {
          expect('error' in outcome && outcome.error).toBeInstanceOf(OnceInputError);
          expect(await snapshot()).toBe(before);
          return;
        }
        if ('error' in outcome) throw outcome.error;
        expect(outcome.result.value).toEqual({ key });
        expect(['leader', 'cached']).toContain(outcome.result.role);
        expect(await once.status(key)).toMatchObject({ state: 'done', value: { key } });
      }),
      { numRuns: 60 },
    );
  });

  it('refuses a key that is not a string, before any I/O', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.integer(), fc.constant(null), fc.constant(undefined), fc.object(), fc.array(fc.string())),
        async (key) => {
          const before = await snapshot();
          await expect(once.run(key as never, () => 1)).rejects.toBeInstanceOf(OnceInputError);
          await expect(once.status(key as never)).rejects.toBeInstanceOf(OnceInputError);
          expect(await snapshot()).toBe(before);
        },
      ),
      { numRuns: 20 },
    );
  });
});

/** Option values as they arrive from configuration: numbers of every kind, and the wrong types. */
const optionValue = fc.oneof(
  fc.integer({ min: -5, max: 5 }),
  fc.integer({ min: 1, max: 100_000 }),
  fc.double({ noDefaultInfinity: false, noNaN: false }),
  fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, -0, 2 ** 53, 2 ** 31, '1000', null, true, {}),
);

/** The rule README states for each per-call option: whole milliseconds or counts, in range. */
function validRunOption(name: string, value: unknown): boolean {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || Object.is(value, -0)) return false;
  switch (name) {
    case 'leaseMs':
      return value >= 100 && value <= 2 ** 31 - 1;
    case 'waitTimeoutMs':
      return value >= 1 && value <= 2 ** 31 - 1;
    case 'doneTtlMs':
      return value >= 1;
    default: // maxAttempts
      return value >= 1;
  }
}

describe('option values, by property', () => {
  it('a per-call option either works or refuses with OnceInputError before any I/O', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('leaseMs', 'waitTimeoutMs', 'doneTtlMs', 'maxAttempts'),
        optionValue,
        async (name, value) => {
          const key = `opt-${randomUUID()}`;
          const names = keyNames(namespace, key);
          const outcome = await once
            .run(key, () => 'ran', { [name]: value } as never)
            .then(
              (result) => ({ result }),
              (error: unknown) => ({ error }),
            );
          // Refused exactly when the documented rule says so.
          expect('error' in outcome && outcome.error instanceof OnceInputError).toBe(
            !validRunOption(name, value),
          );
          if ('error' in outcome && outcome.error instanceof OnceTimeoutError) {
            // A bound of a few ms can end the wait before the claim is answered: the caller is told,
            // and a claim that lands afterwards is given back — idle again, no attempt spent.
            expect(name).toBe('waitTimeoutMs');
            await waitFor(async () => (await once.status(key)).state !== 'running', {
              what: 'the give-back',
            });
            expect(await once.status(key)).toMatchObject({ attempts: 0 });
          } else if ('error' in outcome) {
            expect(outcome.error).toBeInstanceOf(OnceInputError);
            expect((outcome.error as Error).message).toContain(name);
            expect(await redis.client().exists(names.state, names.lease, names.fence)).toBe(0);
          } else {
            expect(outcome.result).toBe('ran');
            const status: OnceStatus = await once.status(key);
            // A tiny doneTtlMs may already have expired: idle again, never half-written.
            expect(['done', 'idle']).toContain(status.state);
          }
        },
      ),
      { numRuns: 80 },
    );
  });

  it('createOnce either builds an instance or refuses with OnceInputError (synchronously)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(
          'leaseMs',
          'waitTimeoutMs',
          'doneTtlMs',
          'maxAttempts',
          'redisTimeoutMs',
          'memoMaxKeys',
        ),
        optionValue,
        async (name, value) => {
          let built: Once | undefined;
          try {
            built = createOnce({ redis: redis.url, namespace, [name]: value } as never);
          } catch (error) {
            expect(error).toBeInstanceOf(OnceInputError);
            return;
          }
          await built.close();
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('values fn returns, by property', () => {
  // (A property whose value is undefined is allowed: JSON drops it, and deep equality treats it as
  // absent too. An undefined array element is not: JSON turns it into null.)
  it('a JSON value comes back exactly; anything JSON would change fails the attempt with OnceSerializationError', async () => {
    const changedByJson = fc.oneof(
      fc.date().map((d) => ({ at: d })),
      fc.constantFrom(
        Number.NaN,
        Number.POSITIVE_INFINITY,
        [undefined],
        new Map([[1, 2]]),
        new Set([1]),
        () => 1,
        Symbol('s'),
      ),
      fc.bigInt().map((n) => ({ n })),
    );
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.jsonValue(), changedByJson), async (value) => {
        const key = `value-${randomUUID()}`;
        const roundTrips = (() => {
          try {
            const text = JSON.stringify(value);
            return text !== undefined && fc.stringify(JSON.parse(text)) === fc.stringify(value);
          } catch {
            return false;
          }
        })();
        const outcome = await once
          .run(key, () => value)
          .then(
            (result) => ({ result }),
            (error: unknown) => ({ error }),
          );
        if (roundTrips) {
          if ('error' in outcome) throw outcome.error;
          expect(outcome.result).toEqual(value);
          expect(await once.status(key)).toMatchObject({ state: 'done' });
        } else {
          expect('error' in outcome && outcome.error).toBeInstanceOf(OnceSerializationError);
          // The attempt is recorded as failed, and nothing else: no done state, no lease left behind.
          expect(await once.status(key)).toMatchObject({ state: 'failed', attempts: 1 });
          expect(await redis.client().exists(`${namespace}:{${key}}:lease`)).toBe(0);
        }
      }),
      { numRuns: 80 },
    );
  });
});
