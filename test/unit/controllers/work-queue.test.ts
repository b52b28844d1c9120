import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ExponentialBackoff, TokenBucket, WorkQueue } from '../../../src/controllers/work-queue.ts';

test('a key added while it waits is reconciled once', async () => {
  const seen: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const queue = new WorkQueue({
    name: 'test',
    workers: 1,
    reconcile: async (key) => {
      if (key === 'blocker') await gate;
      seen.push(key);
      return undefined;
    },
  });
  queue.start();
  queue.add('blocker');
  await sleep(5);
  for (let index = 0; index < 10; index++) queue.add('a');
  queue.add('b');
  queue.add('a');
  assert.equal(queue.length, 2, 'a and b wait once each');
  release();
  await queue.idle();
  assert.deepEqual(seen, ['blocker', 'a', 'b']);
  await queue.stop();
});

test('a key is never reconciled by two workers at once; an add during its reconcile runs it again after', async () => {
  let running = 0;
  let maximum = 0;
  const counts = new Map<string, number>();
  const queue = new WorkQueue({
    name: 'test',
    workers: 4,
    reconcile: async (key) => {
      if (key === 'hot') {
        running++;
        maximum = Math.max(maximum, running);
      }
      counts.set(key, (counts.get(key) ?? 0) + 1);
      await sleep(10);
      if (key === 'hot') running--;
      return undefined;
    },
  });
  queue.start();
  queue.add('hot');
  await sleep(2);
  queue.add('hot'); // while it runs: queued for after
  queue.add('hot'); // de-duplicated with the previous add
  queue.add('cold');
  await queue.idle();
  assert.equal(maximum, 1, 'never two reconciles of one key at once');
  assert.equal(counts.get('hot'), 2, 'once, then once more for the adds during the first run');
  assert.equal(counts.get('cold'), 1);
  await queue.stop();
});

test('failures are retried with a growing back-off; success forgets it', async () => {
  const attempts: number[] = [];
  let failuresLeft = 4;
  const errors: number[] = [];
  const queue = new WorkQueue({
    name: 'test',
    workers: 1,
    baseDelayMs: 10,
    maximumDelayMs: 1000,
    reconcile: async () => {
      attempts.push(Date.now());
      if (failuresLeft-- > 0) throw new Error('not yet');
      return undefined;
    },
    onError: (_key, _error, retryInMs) => errors.push(retryInMs),
  });
  queue.start();
  queue.add('k');
  for (let waited = 0; attempts.length < 5 && waited < 2000; waited += 10) await sleep(10);
  await queue.idle();
  assert.equal(attempts.length, 5);
  assert.deepEqual(errors, [10, 20, 40, 80], 'the delay doubles per failure');
  for (let index = 1; index < attempts.length; index++) {
    assert.ok(
      attempts[index] - attempts[index - 1] >= errors[index - 1] - 2,
      `retry ${index} waited its back-off`,
    );
  }
  assert.equal(queue.failuresOf('k'), 0, 'success resets the back-off');
  await queue.stop();
});

test('requeueAfterMs runs the key again later', async () => {
  let runs = 0;
  const queue = new WorkQueue({
    name: 'test',
    workers: 1,
    reconcile: async () => {
      runs++;
      return runs < 3 ? { requeueAfterMs: 5 } : undefined;
    },
  });
  queue.start();
  queue.add('k');
  for (let waited = 0; runs < 3 && waited < 1000; waited += 5) await sleep(5);
  assert.equal(runs, 3);
  await queue.stop();
});

test('exponential back-off is capped, per key', () => {
  const backoff = new ExponentialBackoff(5, 60_000);
  const delays = Array.from({ length: 20 }, () => backoff.next('a'));
  assert.deepEqual(delays.slice(0, 4), [5, 10, 20, 40]);
  assert.equal(delays.at(-1), 60_000);
  assert.equal(backoff.next('b'), 5, 'another key starts afresh');
  backoff.forget('a');
  assert.equal(backoff.next('a'), 5);
});

test('the token bucket allows a burst, then paces', () => {
  let now = 0;
  const bucket = new TokenBucket(10, 3, () => now);
  assert.deepEqual([bucket.reserve(), bucket.reserve(), bucket.reserve()], [0, 0, 0]);
  assert.equal(bucket.reserve(), 100, 'the fourth waits a tenth of a second');
  assert.equal(bucket.reserve(), 200);
  now = 1000;
  assert.equal(bucket.reserve(), 0, 'a second later tokens are back');
});
