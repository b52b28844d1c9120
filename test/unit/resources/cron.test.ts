import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cronProblem, parseCron } from '../../../src/resources/cron.ts';

test('valid cron expressions', () => {
  for (const expression of [
    '* * * * *',
    '0 */6 * * *',
    '5,35 1-5 1 JAN-MAR mon-fri',
    '0 0 * * 7',
    '*/15 0 1,15 * 1-5',
    '@daily',
    '@every 1h30m',
  ]) {
    assert.equal(cronProblem(expression), undefined, expression);
  }
  const parsed = parseCron('0 */6 * * 1-7');
  assert.ok('schedule' in parsed);
  assert.deepEqual([...parsed.schedule.hours], [0, 6, 12, 18]);
  assert.deepEqual([...parsed.schedule.daysOfWeek].sort(), [0, 1, 2, 3, 4, 5, 6]);
  const every = parseCron('@every 1h30m');
  assert.ok('everySeconds' in every);
  assert.equal(every.everySeconds, 5400);
});

test('invalid cron expressions name the problem', () => {
  for (const expression of [
    '',
    '* * * *',
    '60 * * * *',
    '* 24 * * *',
    '* * 0 * *',
    '* * * 13 *',
    '* * * * 8',
    '*/0 * * * *',
    '5-1 * * * *',
    'a * * * *',
    '@sometimes',
    '@every 5',
    '* * * * * *',
  ]) {
    assert.notEqual(cronProblem(expression), undefined, expression);
  }
});
