/**
 * fn's value travels to every waiter as JSON: what survives JSON unchanged is accepted and comes back
 * deep-equal; anything JSON would silently change is refused with an error naming where it is.
 */
import { describe, expect, it } from 'vitest';
import { OnceError, OnceSerializationError } from '../../src/index.js';
import { decodeValue, encodeValue, MAX_VALUE_BYTES } from '../../src/value.js';

const KEY = 'migrate:v42';

function roundTrip(value: unknown): unknown {
  return decodeValue(encodeValue(value, KEY));
}

/** The error encodeValue throws for `value`, or fails the test. */
function refusal(value: unknown): OnceSerializationError {
  try {
    encodeValue(value, KEY);
  } catch (error) {
    expect(error).toBeInstanceOf(OnceSerializationError);
    return error as OnceSerializationError;
  }
  throw new Error('expected encodeValue to refuse the value');
}

class Point {
  constructor(
    readonly x: number,
    readonly y: number,
  ) {}
}

describe('values that survive JSON', () => {
  const cases: Array<[string, unknown]> = [
    ['a string', 'applied'],
    ['an empty string', ''],
    ['a string with quotes, newlines and emoji', 'say "hi"\n😀\u0000'],
    ['a string with a lone surrogate', 'a\uD800b'],
    ['an integer', 42],
    ['a negative fraction', -0.125],
    ['the largest safe integer', Number.MAX_SAFE_INTEGER],
    ['the largest double', Number.MAX_VALUE],
    ['true', true],
    ['false', false],
    ['null', null],
    ['an empty object', {}],
    ['an empty array', []],
    [
      'nested plain data',
      {
        applied: 12,
        migrations: ['001_init', '002_users'],
        meta: { by: 'node-1', ok: true, skipped: null, nested: [[1, [2, [3]]], { deep: { deeper: 'x' } }] },
      },
    ],
    ['an array of objects', [{ id: 1 }, { id: 2, tags: ['a'] }]],
  ];

  for (const [what, value] of cases) {
    it(`round-trips ${what} deep-equal`, () => {
      const json = encodeValue(value, KEY);
      expect(typeof json).toBe('string');
      expect(roundTrip(value)).toStrictEqual(value);
    });
  }

  it('round-trips an object without a prototype as an equal plain object', () => {
    const bare = Object.assign(Object.create(null) as object, { a: 1, b: [2] });
    expect(roundTrip(bare)).toEqual({ a: 1, b: [2] });
  });

  it('drops an undefined property, which deep equality treats as absent', () => {
    const value = { a: 1, gone: undefined };
    expect(encodeValue(value, KEY)).toBe('{"a":1}');
    expect(roundTrip(value)).toEqual(value);
  });

  it('accepts the same object twice (shared, not circular)', () => {
    const shared = { n: 1 };
    const value = { a: shared, b: shared, list: [shared, shared] };
    expect(roundTrip(value)).toStrictEqual({ a: { n: 1 }, b: { n: 1 }, list: [{ n: 1 }, { n: 1 }] });
  });

  it('encodes undefined at the top level as no value, and decodes no value as undefined', () => {
    expect(encodeValue(undefined, KEY)).toBeUndefined();
    expect(decodeValue(undefined)).toBeUndefined();
  });

  it('decodes the stored JSON text into a fresh copy', () => {
    const json = encodeValue({ list: [1] }, KEY)!;
    const first = decodeValue<{ list: number[] }>(json);
    first.list.push(2);
    expect(decodeValue(json)).toEqual({ list: [1] });
  });
});

describe('values that do not survive JSON', () => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['a BigInt', { count: 10n }, /value\.count is a bigint/],
    ['a BigInt at the top level', 10n, /value is a bigint/],
    ['a Date', { at: new Date(0) }, /value\.at is a Date/],
    ['a Map', { byId: new Map([[1, 'a']]) }, /value\.byId is a Map/],
    ['a Set', [new Set([1])], /value\[0\] is a Set/],
    ['a class instance', { origin: new Point(0, 0) }, /value\.origin is a Point/],
    ['a class instance at the top level', new Point(1, 2), /value is a Point/],
    ['NaN', { ratio: Number.NaN }, /value\.ratio is NaN/],
    ['Infinity', { max: Number.POSITIVE_INFINITY }, /value\.max is Infinity/],
    ['-Infinity', [Number.NEGATIVE_INFINITY], /value\[0\] is -Infinity/],
    ['a function', { run: () => 1 }, /value\.run is a function/],
    ['a toJSON method', { toJSON: () => 'x' }, /value\.toJSON is a function/],
    ['a symbol', { tag: Symbol('t') }, /value\.tag is a symbol/],
    ['undefined inside an array', { items: [1, undefined, 3] }, /value\.items\[1\] is undefined/],
    // biome-ignore lint/suspicious/noSparseArray: a hole is what this case is about
    ['a hole in an array', [1, , 3], /value\[1\] is undefined/],
    ['a BigInt deep inside', { items: [1, 2n] }, /value\.items\[1\] is a bigint/],
    ['a typed array', { bytes: new Uint8Array([1]) }, /value\.bytes is a Uint8Array/],
    ['a RegExp', { re: /x/ }, /value\.re is a RegExp/],
    ['an Error', { error: new Error('boom') }, /value\.error is a Error/],
    ['a boxed string', { s: new String('x') }, /value\.s is a String/],
    ['a Promise', Promise.resolve(1), /value is a Promise/],
    ['-0, which JSON turns into 0', { delta: -0 }, /value\.delta is -0/],
    ['a symbol-keyed property, which JSON drops', { [Symbol('s')]: 1, a: 1 }, /value has symbol keys/],
    ['an array with a named property', Object.assign([1, 2], { extra: 2 }), /value is an array with named/],
    [
      'an arguments object',
      (function (this: unknown, ..._args: number[]) {
        // biome-ignore lint/complexity/noArguments: an arguments object is what this case is about
        return arguments;
      })(1, 2),
      /value is \[object Arguments\]/,
    ],
  ];

  for (const [what, value, path] of cases) {
    it(`refuses ${what}, naming the path`, () => {
      const error = refusal(value);
      expect(error.message).toMatch(path);
      expect(error.message).toContain(`"${KEY}"`);
      expect(error.name).toBe('OnceSerializationError');
      expect(error.code).toBe('ONCE_SERIALIZATION');
      expect(error.key).toBe(KEY);
      expect(error).toBeInstanceOf(OnceError);
    });
  }

  it('refuses a circular object, naming where the cycle closes', () => {
    const node: { name: string; child: { parent?: unknown } } = { name: 'root', child: {} };
    node.child.parent = node;
    expect(refusal(node).message).toMatch(/value\.child\.parent is circular/);
  });

  it('refuses a circular array', () => {
    const list: unknown[] = [1];
    list.push(list);
    expect(refusal(list).message).toMatch(/value\[1\] is circular/);
  });

  it('names the first problem in a value with several', () => {
    expect(refusal({ a: { b: [0, 1, { c: Number.NaN }] }, z: 1n }).message).toMatch(
      /value\.a\.b\[2\]\.c is NaN/,
    );
  });
});

describe('the size of a value', () => {
  it('accepts a value up to MAX_VALUE_BYTES of JSON, and refuses a larger one, naming both sizes', () => {
    const fits = 'x'.repeat(MAX_VALUE_BYTES - 2); // the quotes make it exactly the limit
    expect(encodeValue(fits, KEY)?.length).toBe(MAX_VALUE_BYTES);
    const error = refusal('x'.repeat(MAX_VALUE_BYTES - 1));
    expect(error.message).toContain(`${MAX_VALUE_BYTES + 1} bytes`);
    expect(error.message).toContain(`at most ${MAX_VALUE_BYTES}`);
  });

  it('counts bytes of UTF-8, not characters', () => {
    const error = refusal('é'.repeat(MAX_VALUE_BYTES / 2));
    expect(error.message).toMatch(/bytes as JSON/);
  });
});
