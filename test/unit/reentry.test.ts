/**
 * Re-entry detection: a call awaited from inside fn — at any depth of awaited async functions — sees
 * fn's named frame; a call that fn does not wait for (a timer, after fn returned) does not. Real
 * timers: these tests are about V8's async stack traces, not about time.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { isInside, leadFrame } from '../../src/reentry.js';
import { gate } from '../helpers/gate.js';

const ctx = { key: 'migrate:v42' };
const { prepareStackTrace, stackTraceLimit } = Error;

afterEach(() => {
  Error.prepareStackTrace = prepareStackTrace;
  Error.stackTraceLimit = stackTraceLimit;
});

async function helper(name: string, depth: number): Promise<boolean> {
  await Promise.resolve();
  if (depth > 0) return await helper(name, depth - 1);
  await sleep(1);
  return isInside(name);
}

describe('leadFrame', () => {
  it('names each frame uniquely', () => {
    const names = new Set(Array.from({ length: 5 }, () => leadFrame().name));
    expect(names.size).toBe(5);
  });

  it('hands fn its ctx and resolves with fn’s value', async () => {
    const frame = leadFrame();
    await expect(frame.run(async (c: typeof ctx) => c.key, ctx)).resolves.toBe('migrate:v42');
    await expect(frame.run((c: typeof ctx) => c.key.length, ctx)).resolves.toBe(11);
  });

  it('rejects with what fn throws', async () => {
    const boom = new Error('boom');
    await expect(
      leadFrame().run(() => {
        throw boom;
      }, ctx),
    ).rejects.toBe(boom);
  });
});

describe('isInside', () => {
  it('is true for a call made directly from fn', async () => {
    const frame = leadFrame();
    expect(await frame.run(() => isInside(frame.name), ctx)).toBe(true);
  });

  it('is true for a call made from fn after awaits', async () => {
    const frame = leadFrame();
    const inside = await frame.run(async () => {
      await Promise.resolve();
      await sleep(1);
      return isInside(frame.name);
    }, ctx);
    expect(inside).toBe(true);
  });

  it('is true for a call made through nested awaited async helpers', async () => {
    const frame = leadFrame();
    expect(await frame.run(() => helper(frame.name, 10), ctx)).toBe(true);
  });

  it('is true for a call fn awaits through Promise.all, or through a .then() it awaits', async () => {
    const frame = leadFrame();
    const seen = await frame.run(async () => {
      const [viaAll] = await Promise.all([helper(frame.name, 2), sleep(1)]);
      const viaThen = await sleep(1).then(() => isInside(frame.name));
      return { viaAll, viaThen };
    }, ctx);
    expect(seen).toEqual({ viaAll: true, viaThen: true });
  });

  it('is true through nested helpers even when the application set a tiny stackTraceLimit', async () => {
    Error.stackTraceLimit = 1;
    const frame = leadFrame();
    expect(await frame.run(() => helper(frame.name, 20), ctx)).toBe(true);
  });

  it('is true when the application formats stacks itself (prepareStackTrace returns a string)', async () => {
    Error.prepareStackTrace = () => 'formatted by the application';
    const frame = leadFrame();
    expect(await frame.run(() => helper(frame.name, 2), ctx)).toBe(true);
  });

  it('is false for a call from a timer that fn scheduled: fn does not wait on it', async () => {
    const frame = leadFrame();
    const fromTimer = gate<boolean>();
    await frame.run(async () => {
      setTimeout(() => fromTimer.open(isInside(frame.name)), 1);
      await sleep(20);
    }, ctx);
    expect(await fromTimer.promise).toBe(false);
  });

  it('is false for a call made after fn returned', async () => {
    const frame = leadFrame();
    const later = gate();
    const after = (async () => {
      await later.promise;
      return isInside(frame.name);
    })();
    await frame.run(async () => 'done', ctx);
    later.open();
    expect(await after).toBe(false);
    expect(isInside(frame.name)).toBe(false);
  });

  it('tells two frames apart, also when one runs inside the other', async () => {
    const outer = leadFrame();
    const inner = leadFrame();
    const seen = await outer.run(async () => {
      const fromOuter = { outer: isInside(outer.name), inner: isInside(inner.name) };
      const fromInner = await inner.run(async () => {
        await sleep(1);
        return { outer: isInside(outer.name), inner: isInside(inner.name) };
      }, ctx);
      return { fromOuter, fromInner };
    }, ctx);
    expect(seen).toEqual({
      fromOuter: { outer: true, inner: false },
      fromInner: { outer: true, inner: true },
    });
  });

  it('tells two frames running side by side apart', async () => {
    const a = leadFrame();
    const b = leadFrame();
    const [inA, inB] = await Promise.all([
      a.run(() => helper(a.name, 3).then((mine) => mine && !isInside(b.name)), ctx),
      b.run(() => helper(b.name, 3), ctx),
    ]);
    expect(inA).toBe(true);
    expect(inB).toBe(true);
    const seenFromB = await b.run(() => helper(a.name, 3), ctx);
    expect(seenFromB).toBe(false);
  });

  it('restores Error.prepareStackTrace and Error.stackTraceLimit', async () => {
    const custom = (error: Error) => `custom: ${error.message}`;
    Error.prepareStackTrace = custom;
    Error.stackTraceLimit = 7;
    expect(isInside('redisOnceFnNowhere')).toBe(false);
    expect(Error.prepareStackTrace).toBe(custom);
    expect(Error.stackTraceLimit).toBe(7);

    const frame = leadFrame();
    expect(await frame.run(() => isInside(frame.name), ctx)).toBe(true);
    expect(Error.prepareStackTrace).toBe(custom);
    expect(Error.stackTraceLimit).toBe(7);
  });

  it('restores an unset prepareStackTrace as unset', () => {
    Reflect.deleteProperty(Error, 'prepareStackTrace');
    isInside('redisOnceFnNowhere');
    expect(Error.prepareStackTrace).toBeUndefined();
  });
});
