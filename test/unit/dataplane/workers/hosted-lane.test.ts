import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { hostedIn } from '../../../../src/dataplane/workers/lane-thread.ts';
import { eventually, fields, openChannel } from './channel-harness.ts';
import { TestOperation } from './fixtures/test-handler.ts';

const HOST_THREAD = new URL('./fixtures/lane-host-thread.ts', import.meta.url);

function startHost(t: TestContext): { worker: Worker; exited: () => boolean; ping(): Promise<void> } {
  const worker = new Worker(HOST_THREAD);
  let exited = false;
  worker.once('exit', () => {
    exited = true;
  });
  t.after(() => worker.terminate());
  return {
    worker,
    exited: () => exited,
    ping: () =>
      new Promise((resolve) => {
        const listener = (message: { type?: string }) => {
          if (message?.type !== 'pong') return;
          worker.off('message', listener);
          resolve();
        };
        worker.on('message', listener);
        worker.postMessage({ type: 'ping' });
      }),
  };
}

test('a lane hosted by a running thread serves requests, and the thread outlives the channel', async (t) => {
  const host = startHost(t);
  for (let round = 0; round < 2; round++) {
    // Two channels one after the other on the same thread: a lane's end leaves it ready for the next.
    const harness = await openChannel(t, { workerCount: 1, laneThread: hostedIn(host.worker) });
    for (let id = 1; id <= 40; id++)
      harness.channel.trySubmit(fields(TestOperation.asyncEcho, id + round * 100));
    assert.equal(harness.channel.trySubmit(fields(TestOperation.whoami, 999 + round)), true);
    await eventually(() => harness.outcomes.size === 41, 'the hosted lane to answer');
    for (let id = 1; id <= 40; id++)
      assert.deepEqual(harness.outcomes.get(id + round * 100), {
        errorCode: undefined,
        value: (id + round * 100) * 2,
      });
    await harness.channel.close();
    assert.equal(harness.closeCounter[0], 1, 'the handler was closed in the hosting thread');
    assert.deepEqual(harness.exits, [], 'a lane that ends is not a worker failure');
    assert.equal(host.exited(), false);
    await host.ping();
  }
});

test('a hosting thread that dies fails its lane with WORKER_FAILED and reports the exit', async (t) => {
  const host = startHost(t);
  const harness = await openChannel(t, { workerCount: 1, laneThread: hostedIn(host.worker) });
  harness.channel.trySubmit(fields(TestOperation.hold, 1));
  harness.channel.trySubmit(fields(TestOperation.crash, 2));
  await eventually(() => harness.exits.length === 1, 'the exit to be reported');
  assert.equal(harness.outcomes.get(1)?.errorCode, 'WORKER_FAILED');
  assert.equal(harness.channel.workerState(0), 'dead');
  assert.ok(host.exited());
  assert.throws(
    () => harness.channel.trySubmit(fields(TestOperation.whoami, 3)),
    /WORKER_FAILED|no live worker/,
  );
});

test('a handler that cannot load in the hosting thread fails the open with its code; the thread lives on', async (t) => {
  const host = startHost(t);
  await assert.rejects(
    openChannel(t, {
      workerCount: 1,
      laneThread: hostedIn(host.worker),
      handlerModule: new URL('./fixtures/no-handler.ts', import.meta.url),
    }),
    (error: Error & { code?: string }) => error.code === 'WORKER_HANDLER_INVALID',
  );
  await host.ping();
  assert.equal(host.exited(), false);
});
