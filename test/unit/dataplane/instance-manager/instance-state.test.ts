import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  assertTransition,
  canTransition,
  INSTANCE_STATES,
  SerialQueue,
} from '../../../../src/dataplane/instance-manager/instance-state.ts';
import type { InstanceState } from '../../../../src/dataplane/instance-manager/types.ts';
import { isHornbillError } from '../../../../src/errors.ts';

test('the lifecycle allows exactly the documented transitions', () => {
  const allowed = new Set([
    'starting→running',
    'starting→error',
    'running→stopping',
    'running→error',
    'stopping→stopped',
    'stopping→error',
    'stopped→starting',
    'error→starting',
    'error→stopped',
  ]);
  assert.deepEqual([...INSTANCE_STATES].sort(), ['error', 'running', 'starting', 'stopped', 'stopping']);
  for (const from of INSTANCE_STATES) {
    for (const to of INSTANCE_STATES) {
      const key = `${from}→${to}`;
      assert.equal(canTransition(from, to), allowed.has(key), key);
    }
  }
});

test('a forbidden transition is an INTERNAL error naming the instance and both states', () => {
  const forbidden: [InstanceState, InstanceState][] = [
    ['stopped', 'running'],
    ['running', 'starting'],
    ['error', 'running'],
    ['stopping', 'running'],
  ];
  for (const [from, to] of forbidden) {
    assert.throws(
      () => assertTransition('pvc-1-r-1', from, to),
      (error) => isHornbillError(error, 'INTERNAL') && error.details.from === from && error.details.to === to,
    );
  }
  assertTransition('pvc-1-r-1', 'running', 'error');
});

test('a serial queue runs operations one at a time, in order, past failures', async () => {
  const queue = new SerialQueue();
  const events: string[] = [];
  const step = (name: string, fail = false) =>
    queue.run(async () => {
      events.push(`${name}:begin`);
      await new Promise((resolve) => setTimeout(resolve, 5));
      events.push(`${name}:end`);
      if (fail) throw new Error(`${name} failed`);
      return name;
    });
  const first = step('start');
  const second = step('stop', true);
  const third = step('delete');
  assert.equal(queue.length, 3);
  assert.equal(await first, 'start');
  await assert.rejects(second, /stop failed/);
  assert.equal(await third, 'delete');
  assert.deepEqual(events, [
    'start:begin',
    'start:end',
    'stop:begin',
    'stop:end',
    'delete:begin',
    'delete:end',
  ]);
  await queue.idle();
  assert.equal(queue.length, 0);
});
