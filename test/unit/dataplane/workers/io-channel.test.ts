import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { IoChannel } from '../../../../src/dataplane/workers/io-channel.ts';
import type { IoRequestFields } from '../../../../src/dataplane/workers/io-protocol.ts';
import { isHornbillError } from '../../../../src/errors.ts';
import { eventually, fields, type Outcome, openChannel, TEST_HANDLER } from './channel-harness.ts';
import { fillByte, TestOperation } from './fixtures/test-handler.ts';

const CHUNK = 4096;

interface StreamRequest {
  operation: number;
  offsetBytes: number;
  lengthBytes: number;
  payload: Uint8Array | undefined;
}

/** A deterministic mixed request stream: sync and async results, errors, payloads of 1-3 chunks. */
function requestStream(seed: number, count: number): StreamRequest[] {
  let state = seed >>> 0 || 1;
  const next = (limit: number) => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) % limit;
  };
  const operations = [
    TestOperation.checksum,
    TestOperation.checksum,
    TestOperation.fill,
    TestOperation.fill,
    TestOperation.asyncEcho,
    TestOperation.failCoded,
    TestOperation.failPlain,
    TestOperation.asyncFail,
  ];
  const stream: StreamRequest[] = [];
  for (let index = 0; index < count; index++) {
    const operation = operations[next(operations.length)];
    const withPayload = operation === TestOperation.checksum || operation === TestOperation.fill;
    const lengthBytes = withPayload ? 1 + next(3 * CHUNK) : 0;
    const payload =
      operation === TestOperation.checksum
        ? Uint8Array.from({ length: lengthBytes }, () => next(256))
        : undefined;
    stream.push({ operation, offsetBytes: next(1 << 20) * 512, lengthBytes, payload });
  }
  return stream;
}

interface StreamResult extends Outcome {
  filled: string | undefined;
}

/** Sends the stream through a channel with back-pressure; returns each request's result. */
async function runStream(
  t: Parameters<typeof openChannel>[0],
  workerCount: number,
  stream: StreamRequest[],
  blocking = false,
): Promise<StreamResult[]> {
  const harness = await openChannel(t, {
    workerCount,
    blocking,
    ringCapacity: 8,
    slab: { chunkSizeBytes: CHUNK, chunkCount: 48 },
  });
  const { channel } = harness;
  const chunks = new Map<number, number>();
  const results: StreamResult[] = new Array(stream.length);
  harness.afterCompletion = (requestId, outcome) => {
    const request = stream[requestId];
    const chunk = chunks.get(requestId) ?? -1;
    let filled: string | undefined;
    if (request.operation === TestOperation.fill && outcome.errorCode === undefined) {
      const bytes = Buffer.alloc(request.lengthBytes);
      channel.slab.copyOut(chunk, bytes);
      filled = bytes.toString('base64');
    }
    if (chunk >= 0) channel.slab.free(chunk);
    chunks.delete(requestId);
    results[requestId] = { ...outcome, filled };
  };
  const request: IoRequestFields = fields(0, 0);
  for (let requestId = 0; requestId < stream.length; requestId++) {
    const { operation, offsetBytes, lengthBytes, payload } = stream[requestId];
    let chunk = -1;
    if (lengthBytes > 0) {
      for (
        chunk = channel.slab.tryAllocate(lengthBytes);
        chunk < 0;
        chunk = channel.slab.tryAllocate(lengthBytes)
      ) {
        await channel.slab.whenAvailable(lengthBytes);
      }
      if (payload !== undefined) channel.slab.copyIn(chunk, payload);
      chunks.set(requestId, chunk);
    }
    Object.assign(request, { operation, offsetBytes, lengthBytes, chunkIndex: chunk, requestId, flags: 0 });
    while (!channel.trySubmit(request)) await channel.whenWritable();
  }
  await eventually(() => harness.outcomes.size === stream.length, 'every completion');
  assert.equal(channel.inFlightCount(), 0);
  assert.equal(channel.slab.freeCount(), channel.slab.chunkCount, 'every payload chunk was given back');
  await channel.close();
  return results;
}

describe('IoChannel', () => {
  test('0 (inline), 1 and 3 workers, and 3 blocking workers, give the same results for the same stream', async (t) => {
    const stream = requestStream(20240917, 1500);
    const inline = await runStream(t, 0, stream);
    // The results are right, not merely equal: spot-check every kind against the handler's definition.
    for (let requestId = 0; requestId < stream.length; requestId++) {
      const { operation, offsetBytes, lengthBytes } = stream[requestId];
      const result = inline[requestId];
      if (operation === TestOperation.failCoded) assert.equal(result.errorCode, 'STORE_OUT_OF_RANGE');
      else if (operation === TestOperation.failPlain) assert.equal(result.errorCode, 'INTERNAL');
      else if (operation === TestOperation.asyncFail)
        assert.equal(result.errorCode, 'STORE_CHECKSUM_MISMATCH');
      else assert.equal(result.errorCode, undefined);
      if (operation === TestOperation.asyncEcho) assert.equal(result.value, requestId * 2);
      if (operation === TestOperation.fill) {
        const expected = Buffer.from(
          Array.from({ length: lengthBytes }, (_, index) => fillByte(offsetBytes, index)),
        );
        assert.equal(result.filled, expected.toString('base64'));
      }
    }
    assert.deepEqual(await runStream(t, 1, stream), inline);
    assert.deepEqual(await runStream(t, 3, stream), inline);
    assert.deepEqual(await runStream(t, 3, stream, true), inline);
  });

  test('every descriptor field crosses the ring intact, offsets up to 2^53 - 1', async (t) => {
    for (const workerCount of [0, 2]) {
      const { channel } = await openChannel(t, {
        workerCount,
        slab: { chunkSizeBytes: 4096, chunkCount: 4 },
      });
      const chunk = channel.slab.tryAllocate(32);
      for (const [offsetBytes, lengthBytes, requestId, flags] of [
        [Number.MAX_SAFE_INTEGER, 0x7fffffff, -1, -0x80000000],
        [2 ** 32 + 4096, 4096, 0x7fffffff, 1],
        [2 ** 40 - 512, 0, -123456, 0x40000000],
      ]) {
        const value = await channel.submit(
          fields(TestOperation.describe, requestId, { offsetBytes, lengthBytes, chunkIndex: chunk, flags }),
        );
        assert.equal(value, TestOperation.describe);
        const seen = new Float64Array(4);
        channel.slab.copyOut(chunk, new Uint8Array(seen.buffer));
        assert.deepEqual(
          [...seen],
          [offsetBytes, lengthBytes, requestId, flags],
          `with ${workerCount} workers`,
        );
      }
      channel.slab.free(chunk);
      await channel.close();
    }
  });

  test('submit() resolves with the value and rejects with the completion code', async (t) => {
    const { channel } = await openChannel(t, { workerCount: 1 });
    assert.equal(await channel.submit(fields(TestOperation.asyncEcho, 21)), 42);
    await assert.rejects(channel.submit(fields(TestOperation.asyncFail, 5)), (error) => {
      assert.ok(isHornbillError(error, 'STORE_CHECKSUM_MISMATCH'));
      assert.equal(error.details.requestId, 5);
      return true;
    });
  });

  for (const workerCount of [0, 1]) {
    test(`back-pressure with ${workerCount} workers: trySubmit refuses beyond the ring capacity until a completion`, async (t) => {
      const harness = await openChannel(t, { workerCount, ringCapacity: 4 });
      const { channel } = harness;
      for (let requestId = 0; requestId < 4; requestId++) {
        assert.equal(channel.trySubmit(fields(TestOperation.hold, requestId)), true);
      }
      assert.equal(channel.trySubmit(fields(TestOperation.hold, 4)), false, 'the fifth request does not fit');
      assert.equal(channel.inFlightCount(), 4);
      let writable = false;
      const waiting = channel.whenWritable().then(() => {
        writable = true;
      });
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(writable, false, 'no room while all four are held');
      harness.openGate();
      await waiting;
      assert.equal(channel.trySubmit(fields(TestOperation.hold, 4)), true);
      await eventually(() => harness.outcomes.size === 5, 'all five completions');
      for (const outcome of harness.outcomes.values())
        assert.deepEqual(outcome, { errorCode: undefined, value: 1 });
    });
  }

  test('bad requests, options and handler modules are coded errors', async (t) => {
    const { channel } = await openChannel(t, {
      workerCount: 0,
      slab: { chunkSizeBytes: 4096, chunkCount: 2 },
    });
    for (const bad of [
      { offsetBytes: -1 },
      { offsetBytes: 2 ** 53 },
      { lengthBytes: 2 ** 31 },
      { chunkIndex: 2 },
      { chunkIndex: -2 },
      { requestId: 1.5 },
      { operation: 2 ** 31 },
    ]) {
      assert.throws(
        () => channel.trySubmit(fields(TestOperation.whoami, 1, bad)),
        (error) => isHornbillError(error, 'INVALID_ARGUMENT'),
        JSON.stringify(bad),
      );
    }
    assert.equal(channel.inFlightCount(), 0);
    await assert.rejects(IoChannel.open({ workerCount: 65, handlerModule: TEST_HANDLER }), (error) =>
      isHornbillError(error, 'INVALID_ARGUMENT'),
    );
    await assert.rejects(IoChannel.open({ workerCount: 1, handlerModule: 'relative/handler.ts' }), (error) =>
      isHornbillError(error, 'INVALID_ARGUMENT'),
    );
    await assert.rejects(
      IoChannel.open({ workerCount: 1, handlerModule: TEST_HANDLER, ringCapacity: 3 }),
      (error) => isHornbillError(error, 'INVALID_ARGUMENT'),
    );
    const notAHandler = new URL('./fixtures/no-handler.ts', import.meta.url);
    const missing = fileURLToPath(new URL('./fixtures/does-not-exist.ts', import.meta.url));
    for (const workerCount of [0, 2]) {
      for (const handlerModule of [notAHandler, missing]) {
        await assert.rejects(
          IoChannel.open({ workerCount, handlerModule }),
          (error) => isHornbillError(error, 'WORKER_HANDLER_INVALID'),
          `${workerCount} workers, ${handlerModule}`,
        );
      }
    }
  });
});
