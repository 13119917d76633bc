/**
 * What a listener may hand a call as its traceparent (diagnostics.ts): only a valid W3C traceparent
 * reaches Redis, with the leader's value; anything else is dropped.
 */
import { describe, expect, it } from 'vitest';
import { traceparentOf } from '../../src/diagnostics.js';

const VALID = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

describe('traceparentOf', () => {
  it('keeps a valid traceparent', () => {
    expect(traceparentOf({ key: 'k', namespace: 'n', traceparent: VALID })).toBe(VALID);
  });

  it.each([
    ['upper-case hex', VALID.toUpperCase()],
    ['version ff', `ff${VALID.slice(2)}`],
    ['an all-zero trace id', `00-${'0'.repeat(32)}-b7ad6b7169203331-01`],
    ['an all-zero span id', `00-0af7651916cd43dd8448eb211c80319c-${'0'.repeat(16)}-01`],
    ['a Lua fragment', `${VALID}'..redis.call('FLUSHALL')..'`],
    ['a newline after it', `${VALID}\n`],
    ['not a string', 42],
    ['nothing', undefined],
  ])('drops %s', (_, traceparent) => {
    expect(traceparentOf({ key: 'k', namespace: 'n', traceparent: traceparent as string })).toBeUndefined();
  });
});
