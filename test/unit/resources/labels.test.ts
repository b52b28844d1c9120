import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isHornbillError } from '../../../src/errors.ts';
import {
  formatLabelSelector,
  type LabelRequirement,
  matchesLabels,
  parseLabelSelector,
  toLabelRequirements,
} from '../../../src/resources/labels.ts';

test('selector text parses into requirements', () => {
  assert.deepEqual(parseLabelSelector(''), []);
  assert.deepEqual(
    parseLabelSelector('app=web, tier != db,zone in (a, b),env notin (dev),release,!canary,x==y'),
    [
      { key: 'app', operator: 'In', values: ['web'] },
      { key: 'tier', operator: 'NotIn', values: ['db'] },
      { key: 'zone', operator: 'In', values: ['a', 'b'] },
      { key: 'env', operator: 'NotIn', values: ['dev'] },
      { key: 'release', operator: 'Exists', values: [] },
      { key: 'canary', operator: 'DoesNotExist', values: [] },
      { key: 'x', operator: 'In', values: ['y'] },
    ],
  );
  assert.deepEqual(parseLabelSelector('hornbill.io/volume=vol1'), [
    { key: 'hornbill.io/volume', operator: 'In', values: ['vol1'] },
  ]);
});

test('malformed selectors are INVALID_ARGUMENT', () => {
  for (const bad of [
    'a in (b',
    'a in ()',
    '=b',
    'a=b c',
    'a b',
    ',',
    'a=b,',
    'Bad Key=1',
    'a=-x-',
    `a=${'v'.repeat(64)}`,
  ]) {
    assert.throws(
      () => parseLabelSelector(bad),
      (error: unknown) => isHornbillError(error, 'INVALID_ARGUMENT'),
      bad,
    );
  }
  assert.throws(
    () => toLabelRequirements({ matchExpressions: [{ key: 'a', operator: 'Near' as never, values: ['b'] }] }),
    (error: unknown) => isHornbillError(error, 'INVALID_ARGUMENT'),
  );
});

test('matching follows Kubernetes: != and notin also match an absent label', () => {
  const labels = { app: 'web', zone: 'a' };
  const match = (selector: string, on: Record<string, string> | undefined = labels) =>
    matchesLabels(parseLabelSelector(selector), on);
  assert.equal(match('app=web'), true);
  assert.equal(match('app=db'), false);
  assert.equal(match('tier!=db'), true);
  assert.equal(match('app!=web'), false);
  assert.equal(match('zone in (a,b)'), true);
  assert.equal(match('zone in (b)'), false);
  assert.equal(match('tier notin (db)'), true);
  assert.equal(match('zone notin (a)'), false);
  assert.equal(match('zone'), true);
  assert.equal(match('tier'), false);
  assert.equal(match('!tier'), true);
  assert.equal(match('!zone'), false);
  assert.equal(match('app=web,zone'), true);
  assert.equal(match('app=web,tier'), false);
  assert.equal(matchesLabels(parseLabelSelector('app=web'), undefined), false);
  assert.equal(matchesLabels(parseLabelSelector('tier!=db'), undefined), true);
  assert.equal(matchesLabels(parseLabelSelector(''), undefined), true);
});

test('the object form and the text form agree', () => {
  const fromObject = toLabelRequirements({
    matchLabels: { app: 'web' },
    matchExpressions: [
      { key: 'zone', operator: 'In', values: ['a', 'b'] },
      { key: 'canary', operator: 'DoesNotExist' },
    ],
  });
  assert.deepEqual(fromObject, parseLabelSelector('app=web,zone in (a,b),!canary'));
});

const key = fc.stringMatching(/^[a-z][a-z0-9]{0,5}(\.[a-z]{1,3}\/[a-z][a-z0-9]{0,4})?$/);
const value = fc.stringMatching(/^[a-z0-9]{1,4}$/);
const requirement: fc.Arbitrary<LabelRequirement> = fc.oneof(
  fc.record({
    key,
    operator: fc.constantFrom('In' as const, 'NotIn' as const),
    values: fc.uniqueArray(value, { minLength: 1, maxLength: 3 }),
  }),
  fc.record({
    key,
    operator: fc.constantFrom('Exists' as const, 'DoesNotExist' as const),
    values: fc.constant<string[]>([]),
  }),
);

test('format then parse gives the same requirements, and the same matches', () => {
  fc.assert(
    fc.property(
      fc.array(requirement, { maxLength: 5 }),
      fc.dictionary(key, value),
      (requirements, labels) => {
        const parsed = parseLabelSelector(formatLabelSelector(requirements));
        assert.deepEqual(
          parsed,
          requirements.map((item) => ({ ...item, values: [...item.values] })),
        );
        assert.equal(matchesLabels(parsed, labels), matchesLabels(requirements, labels));
      },
    ),
  );
});
