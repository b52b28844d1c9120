import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isHornbillError } from '../../../src/errors.ts';
import {
  formatByteQuantity,
  parseByteQuantity,
  requireByteQuantity,
} from '../../../src/resources/quantity.ts';

test('byte quantities parse exactly', () => {
  const cases: [string, number | undefined][] = [
    ['0', 0],
    ['4096', 4096],
    ['2Gi', 2 * 1024 ** 3],
    ['512Mi', 512 * 1024 ** 2],
    ['1.5Gi', 1.5 * 1024 ** 3],
    ['10G', 10e9],
    ['1k', 1000],
    ['16Ti', 16 * 1024 ** 4],
    ['0.5', undefined],
    ['1.1k', 1100],
    ['1.0001k', undefined],
    ['-1', undefined],
    ['2gi', undefined],
    ['2 Gi', undefined],
    ['', undefined],
    ['9Ei', undefined],
    ['1e3', undefined],
  ];
  for (const [text, bytes] of cases) assert.equal(parseByteQuantity(text), bytes, text);
  assert.throws(
    () => requireByteQuantity('big', 'spec.size'),
    (error: unknown) => isHornbillError(error, 'INVALID_ARGUMENT'),
  );
});

test('formatting picks the largest exact binary unit, and parses back', () => {
  assert.equal(formatByteQuantity(2 * 1024 ** 3), '2Gi');
  assert.equal(formatByteQuantity(1536 * 1024 ** 2), '1536Mi');
  assert.equal(formatByteQuantity(1000), '1000');
  assert.equal(formatByteQuantity(0), '0');
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 50 }), (bytes) => {
      assert.equal(parseByteQuantity(formatByteQuantity(bytes)), bytes);
    }),
  );
});
