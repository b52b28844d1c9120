import assert from 'node:assert/strict';
import fs from 'node:fs';
import { describe, test } from 'node:test';
import { isHornbillError } from '../../../../src/errors.ts';
import { eventually, fields, openChannel } from './channel-harness.ts';
import { TestOperation } from './fixtures/test-handler.ts';

/**
 * Operating-system threads of this process that are channel workers (Node names a worker's
 * thread after its `name`, 'hornbill-io-N'): a worker that was not joined still counts.
 */
function ioWorkerThreads(): number {
  let count = 0;
  for (const thread of fs.readdirSync('/proc/self/task')) {
    try {
      if (fs.readFileSync(`/proc/self/task/${thread}/comm`, 'utf8').startsWith('hornbill-io-')) count++;
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return count;
}

/**
 * Asserts that no channel worker thread is left. pthread_join returns once the kernel has
 * released the thread's memory, a moment before it leaves /proc/self/task (the rest of its
 * exit runs after): a joined thread is gone within milliseconds, an unjoined one stays.
 */
async function assertWorkerThreadsJoined(): Promise<void> {
  const deadline = Date.now() + 1000;
  while (ioWorkerThreads() > 0 && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(ioWorkerThreads(), 0, 'every worker thread was joined');
}

describe('IoChannel worker failures', () => {
  test('a terminated worker fails exactly its requests in flight with WORKER_FAILED; a replacement serves again', async (t) => {
    const harness = await openChannel(t, { workerCount: 2, ringCapacity: 8 });
    const { channel, outcomes, exits } = harness;
    // Least-loaded dispatch spreads held requests evenly: 4 per worker.
    for (let requestId = 0; requestId < 8; requestId++) {
      assert.ok(channel.trySubmit(fields(TestOperation.hold, requestId)));
    }
    assert.equal(channel.inFlightCount(0), 4);
    assert.equal(channel.inFlightCount(1), 4);
    assert.equal(ioWorkerThreads(), 2, 'the thread count sees the workers');
    // Wait until worker 0 has taken its requests into the handler (mid-stream, not queued).
    await new Promise((resolve) => setTimeout(resolve, 50));
    await channel.terminateWorker(0);
    assert.equal(channel.workerState(0), 'dead');
    assert.equal(exits.length, 1);
    assert.equal(exits[0].workerIndex, 0);
    assert.equal(exits[0].failedRequests, 4);
    const failed = [...outcomes].filter(([, outcome]) => outcome.errorCode === 'WORKER_FAILED');
    assert.equal(failed.length, 4, 'the four requests of worker 0 failed');
    assert.equal(outcomes.size, 4, 'the requests of worker 1 are still in flight');
    assert.equal(channel.inFlightCount(0), 0);

    // The channel keeps working on the surviving worker...
    assert.equal(await channel.submit(fields(TestOperation.whoami, 100)), 1);
    harness.openGate();
    await eventually(() => outcomes.size === 8, 'the held requests of worker 1');
    for (const [requestId, outcome] of outcomes) {
      if (outcome.errorCode === undefined) assert.equal(outcome.value, 1, `request ${requestId}`);
    }
    // ...and with a replacement on a fresh lane.
    await channel.restartWorker(0);
    assert.equal(channel.workerState(0), 'live');
    const served = new Set<number>();
    for (let requestId = 200; requestId < 240; requestId++) {
      assert.ok(channel.trySubmit(fields(TestOperation.whoami, requestId)));
      if (requestId % 8 === 7) await eventually(() => channel.inFlightCount() === 0, 'a batch');
    }
    await eventually(() => channel.inFlightCount() === 0, 'the whoami requests');
    for (let requestId = 200; requestId < 240; requestId++) served.add(outcomes.get(requestId)?.value ?? -1);
    assert.deepEqual([...served].sort(), [0, 1], 'both workers serve');
    await channel.close();
    await assertWorkerThreadsJoined();
  });

  test('an uncaught exception in a worker fails its requests, is reported, and leaves no lane wedged', async (t) => {
    const harness = await openChannel(t, { workerCount: 1, ringCapacity: 8 });
    const { channel, outcomes, exits } = harness;
    for (let requestId = 0; requestId < 3; requestId++)
      channel.trySubmit(fields(TestOperation.hold, requestId));
    channel.trySubmit(fields(TestOperation.asyncEcho, 3));
    channel.trySubmit(fields(TestOperation.crash, 4));
    for (let requestId = 5; requestId < 8; requestId++)
      channel.trySubmit(fields(TestOperation.hold, requestId));
    await eventually(() => exits.length === 1, 'the worker to die');
    assert.match(String(exits[0].error?.message), /injected crash/);
    assert.notEqual(exits[0].exitCode, 0);
    assert.equal(outcomes.size, 8, 'every request completed');
    // asyncEcho may have finished before the crash; every other one failed with the code.
    for (const [requestId, outcome] of outcomes) {
      if (requestId === 3 && outcome.errorCode === undefined) assert.equal(outcome.value, 6);
      else assert.equal(outcome.errorCode, 'WORKER_FAILED', `request ${requestId}`);
    }
    assert.equal(channel.inFlightCount(), 0);
    assert.equal(channel.workerState(0), 'dead');
    // No worker alive: submitting is a coded error, not a hang.
    assert.throws(
      () => channel.trySubmit(fields(TestOperation.whoami, 9)),
      (error) => isHornbillError(error, 'WORKER_FAILED'),
    );
    await assert.rejects(channel.restartWorker(7), (error) => isHornbillError(error, 'INVALID_ARGUMENT'));
    await channel.restartWorker(0);
    harness.openGate();
    // A full ring's worth after the restart: the lane was re-initialized, not left half-used.
    const values = await Promise.all(
      Array.from({ length: 20 }, (_, index) => channel.submit(fields(TestOperation.asyncEcho, 10 + index))),
    );
    assert.deepEqual(
      values,
      Array.from({ length: 20 }, (_, index) => (10 + index) * 2),
    );
  });

  test('a completion published just before the worker dies is delivered as a success', async (t) => {
    const harness = await openChannel(t, { workerCount: 1 });
    const { channel, outcomes, exits } = harness;
    channel.trySubmit(fields(TestOperation.completeThenCrash, 1));
    await eventually(() => exits.length === 1, 'the worker to die');
    assert.deepEqual(outcomes.get(1), { errorCode: undefined, value: 7 });
    assert.equal(exits[0].failedRequests, 0);
  });

  for (const workerCount of [0, 2]) {
    test(`close() with ${workerCount} workers drains requests in flight, runs handler close, leaves no thread`, async (t) => {
      const harness = await openChannel(t, { workerCount });
      const { channel, outcomes } = harness;
      for (let requestId = 0; requestId < 6; requestId++)
        channel.trySubmit(fields(TestOperation.hold, requestId));
      let closed = false;
      const closing = channel.close().then(() => {
        closed = true;
      });
      assert.throws(
        () => channel.trySubmit(fields(TestOperation.whoami, 99)),
        (error) => isHornbillError(error, 'WORKER_CHANNEL_CLOSED'),
      );
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(closed, false, 'close waits for the held requests');
      harness.openGate();
      await closing;
      assert.equal(outcomes.size, 6);
      for (const outcome of outcomes.values()) assert.deepEqual(outcome, { errorCode: undefined, value: 1 });
      assert.equal(
        Atomics.load(harness.closeCounter, 0),
        Math.max(1, workerCount),
        'every handler was closed',
      );
      await assertWorkerThreadsJoined();
    });

    test(`close({ drain: false }) with ${workerCount} workers fails requests in flight with WORKER_CHANNEL_CLOSED`, async (t) => {
      const harness = await openChannel(t, { workerCount });
      const { channel, outcomes } = harness;
      for (let requestId = 0; requestId < 5; requestId++)
        channel.trySubmit(fields(TestOperation.hold, requestId));
      const rejected = assert.rejects(channel.submit(fields(TestOperation.hold, 5)), (error) =>
        isHornbillError(error, 'WORKER_CHANNEL_CLOSED'),
      );
      await channel.close({ drain: false });
      await rejected;
      assert.equal(outcomes.size, 5);
      for (const outcome of outcomes.values()) assert.equal(outcome.errorCode, 'WORKER_CHANNEL_CLOSED');
      assert.equal(channel.inFlightCount(), 0);
      await assertWorkerThreadsJoined();
      harness.openGate();
    });
  }

  test('a drain that times out fails the rest with WORKER_CHANNEL_CLOSED', async (t) => {
    const harness = await openChannel(t, { workerCount: 1 });
    const { channel, outcomes } = harness;
    channel.trySubmit(fields(TestOperation.asyncEcho, 1));
    channel.trySubmit(fields(TestOperation.hold, 2));
    await channel.close({ drainTimeoutMs: 100 });
    assert.deepEqual(outcomes.get(1), { errorCode: undefined, value: 2 });
    assert.equal(outcomes.get(2)?.errorCode, 'WORKER_CHANNEL_CLOSED');
    await assertWorkerThreadsJoined();
  });
});
