import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  findCondition,
  isConditionTrue,
  removeCondition,
  setCondition,
} from '../../../src/resources/conditions.ts';

test('lastTransitionTime moves only when the status changes', () => {
  const t0 = Date.parse('2026-01-01T00:00:00Z');
  const scheduled = setCondition(
    undefined,
    { type: 'Scheduled', status: 'False', reason: 'ReplicaSchedulingFailure', message: 'no node' },
    t0,
  );
  assert.equal(scheduled[0].lastTransitionTime, '2026-01-01T00:00:00Z');
  const again = setCondition(
    scheduled,
    { type: 'Scheduled', status: 'False', reason: 'ReplicaSchedulingFailure', message: 'still no node' },
    t0 + 60_000,
  );
  assert.equal(again[0].lastTransitionTime, '2026-01-01T00:00:00Z');
  assert.equal(again[0].message, 'still no node');
  const done = setCondition(
    again,
    { type: 'Scheduled', status: 'True', reason: 'Scheduled', message: '', observedGeneration: 2 },
    t0 + 120_000,
  );
  assert.equal(done[0].lastTransitionTime, '2026-01-01T00:02:00Z');
  assert.equal(done[0].observedGeneration, 2);
  assert.equal(done.length, 1);
  const both = setCondition(done, { type: 'Ready', status: 'True', reason: 'Ready', message: '' }, t0);
  assert.deepEqual(
    both.map((condition) => condition.type),
    ['Scheduled', 'Ready'],
  );
  assert.equal(isConditionTrue(both, 'Ready'), true);
  assert.equal(findCondition(both, 'Missing'), undefined);
  assert.deepEqual(
    removeCondition(both, 'Ready').map((condition) => condition.type),
    ['Scheduled'],
  );
  assert.equal(scheduled[0].message, 'no node', 'the input array is not changed');
});
