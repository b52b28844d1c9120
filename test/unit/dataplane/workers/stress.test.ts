import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { PayloadSlab } from '../../../../src/dataplane/workers/payload-slab.ts';
import {
  kRingNotEmptyDoorbell,
  kRingNotFullDoorbell,
  RingQueue,
} from '../../../../src/dataplane/workers/ring-queue.ts';
import type { PingPongData } from './fixtures/ping-pong-thread.ts';
import {
  COUNTER_WORDS,
  kCounterBadPayload,
  kCounterBadTag,
  kCounterDelivered,
  kCounterDuplicates,
  kCounterOutOfOrder,
  kFieldChunk,
  kFieldLength,
  kFieldProducer,
  kFieldSequence,
  payloadByte,
  payloadLength,
  STRESS_DESCRIPTOR_WORDS,
  type StressThreadData,
} from './fixtures/stress-thread.ts';

const STRESS_THREAD = new URL('./fixtures/stress-thread.ts', import.meta.url);
const PING_PONG_THREAD = new URL('./fixtures/ping-pong-thread.ts', import.meta.url);

/**
 * Starts stress-thread.ts workers; `finished(i)` resolves with the count thread i reports.
 * If any thread fails, every other one is terminated, so a broken ring fails the test at
 * once; and every thread is terminated when the test ends (also by failure or timeout), so
 * that sleepers left behind by a broken ring cannot keep the process alive.
 */
function startThreads(t: TestContext, threads: StressThreadData[]): Promise<number>[] {
  const workers: Worker[] = [];
  t.after(() => Promise.all(workers.map((worker) => worker.terminate())));
  return threads.map((data) => {
    const worker = new Worker(STRESS_THREAD, { workerData: data });
    workers.push(worker);
    return new Promise<number>((resolve, reject) => {
      let count = -1;
      worker.once('message', (message: { count: number }) => {
        count = message.count;
      });
      worker.once('error', (error) => {
        for (const other of workers) void other.terminate();
        reject(error);
      });
      worker.once('exit', (code) => {
        if (code === 0 && count >= 0) resolve(count);
        else reject(new Error(`${data.role} ${data.threadIndex} exited with ${code}`));
      });
    });
  });
}

function checkSlabAllFree(slab: PayloadSlab): void {
  assert.equal(slab.freeCount(), slab.chunkCount, 'every chunk is free again');
  assert.equal(slab.freeBitCount(), slab.chunkCount, 'every bit of the free bitmap is set again');
  for (let index = 0; index < slab.chunkCount; index++)
    assert.ok(slab.isFree(index), `chunk ${index} is free`);
}

test('3 producer and 3 consumer threads move 3,000,000 descriptors through an 8-slot ring: each delivered once, payloads intact', {
  timeout: 120_000,
}, async (t) => {
  const producerCount = 3;
  const consumerCount = 3;
  const itemsPerProducer = 1_000_000;
  const ring = RingQueue.create({ capacity: 8, descriptorWords: STRESS_DESCRIPTOR_WORDS });
  // 16 chunks of 64 bytes for payloads of up to 160 bytes (1-3 chunks): allocation waits too.
  const slab = PayloadSlab.create({ chunkSizeBytes: 64, chunkCount: 16 });
  const wordsPerProducer = Math.ceil(itemsPerProducer / 32);
  const deliveredBuffer = new SharedArrayBuffer(producerCount * wordsPerProducer * 4);
  const countersBuffer = new SharedArrayBuffer(COUNTER_WORDS * 4);
  const common = {
    producerCount,
    itemsPerProducer,
    ringBuffer: ring.buffer,
    slabBuffer: slab.buffer,
    deliveredBuffer,
    countersBuffer,
  };
  const started = performance.now();
  const threads = startThreads(t, [
    ...Array.from({ length: consumerCount }, (_, threadIndex) => ({
      ...common,
      role: 'consumer' as const,
      threadIndex,
    })),
    ...Array.from({ length: producerCount }, (_, threadIndex) => ({
      ...common,
      role: 'producer' as const,
      threadIndex,
    })),
  ]);
  const consumers = threads.slice(0, consumerCount);
  const producers = threads.slice(consumerCount);
  // Observe every promise at once, so a failure anywhere rejects here without unhandled rejections.
  const everything = Promise.all(threads);
  everything.catch(() => {});
  await Promise.race([Promise.all(producers), everything]);
  // Every producer has committed its last descriptor: consumers may now stop when empty.
  ring.close();
  const consumed = await Promise.all(consumers);
  const seconds = (performance.now() - started) / 1000;

  const counters = new Int32Array(countersBuffer);
  const total = producerCount * itemsPerProducer;
  assert.equal(counters[kCounterBadTag], 0, 'descriptors with impossible tags');
  assert.equal(counters[kCounterDuplicates], 0, 'descriptors delivered twice');
  assert.equal(counters[kCounterBadPayload], 0, 'payloads damaged');
  assert.equal(counters[kCounterOutOfOrder], 0, 'one producer overtaking itself at one consumer');
  assert.equal(counters[kCounterDelivered], total);
  assert.equal(
    consumed.reduce((sum, count) => sum + count, 0),
    total,
  );
  const delivered = new Int32Array(deliveredBuffer);
  for (let producer = 0; producer < producerCount; producer++) {
    for (let sequence = 0; sequence < itemsPerProducer; sequence++) {
      const word = delivered[producer * wordsPerProducer + (sequence >>> 5)];
      if ((word & (1 << (sequence & 31))) === 0)
        assert.fail(`producer ${producer} sequence ${sequence} was lost`);
    }
  }
  assert.equal(ring.size(), 0);
  checkSlabAllFree(slab);
  // Both doorbells were rung for sleepers (the sequence moves only when someone slept), so
  // the blocking paths, not only the spins, were exercised.
  assert.ok(ring.words[kRingNotEmptyDoorbell] > 1, 'consumers slept on an empty ring');
  assert.ok(ring.words[kRingNotFullDoorbell] > 1, 'producers slept on a full ring');
  const perConsumer = consumed.join(' / ');
  console.log(`# stress: ${total} descriptors in ${seconds.toFixed(1)} s; per consumer ${perConsumer}`);
});

test('the main thread consumes with Atomics.waitAsync while 2 producer threads push: nothing lost, nothing twice', {
  timeout: 60_000,
}, async (t) => {
  const producerCount = 2;
  const itemsPerProducer = 100_000;
  const ring = RingQueue.create({ capacity: 4, descriptorWords: STRESS_DESCRIPTOR_WORDS });
  const slab = PayloadSlab.create({ chunkSizeBytes: 64, chunkCount: 8 });
  const wordsPerProducer = Math.ceil(itemsPerProducer / 32);
  const common = {
    producerCount,
    itemsPerProducer,
    ringBuffer: ring.buffer,
    slabBuffer: slab.buffer,
    deliveredBuffer: new SharedArrayBuffer(4),
    countersBuffer: new SharedArrayBuffer(COUNTER_WORDS * 4),
  };
  const producers = startThreads(
    t,
    Array.from({ length: producerCount }, (_, threadIndex) => ({
      ...common,
      role: 'producer' as const,
      threadIndex,
    })),
  );
  Promise.all(producers).catch(() => {});
  const seen = new Uint8Array(producerCount * wordsPerProducer * 32);
  const nextExpected = new Int32Array(producerCount);
  let received = 0;
  let sleeps = 0;
  while (received < producerCount * itemsPerProducer) {
    const slot = ring.tryTake();
    if (slot < 0) {
      sleeps++;
      await ring.whenTakeable();
      continue;
    }
    const base = ring.fieldBase(slot);
    const producer = ring.words[base + kFieldProducer];
    const sequence = ring.words[base + kFieldSequence];
    const first = ring.words[base + kFieldChunk];
    const length = ring.words[base + kFieldLength];
    ring.release(slot);
    assert.equal(seen[producer * itemsPerProducer + sequence], 0, 'delivered once');
    seen[producer * itemsPerProducer + sequence] = 1;
    // A single consumer sees each producer's descriptors in the order they were pushed.
    assert.equal(sequence, nextExpected[producer]);
    nextExpected[producer]++;
    assert.equal(length, payloadLength(producer, sequence, slab.chunkSizeBytes));
    const bytes = new Uint8Array(length);
    slab.copyOut(first, bytes);
    for (let offset = 0; offset < length; offset++) {
      if (bytes[offset] !== payloadByte(producer, sequence, offset))
        assert.fail(`payload of ${producer}/${sequence}`);
    }
    slab.free(first);
    received++;
  }
  await Promise.all(producers);
  assert.deepEqual([...nextExpected], [itemsPerProducer, itemsPerProducer]);
  assert.ok(sleeps > 0, 'the main thread had to wait');
  checkSlabAllFree(slab);
});

test('ping-pong between two threads through two 2-slot rings: 100,000 hand-offs, each waking the sleeping side', {
  timeout: 60_000,
}, async (t) => {
  const rounds = 100_000;
  const requests = RingQueue.create({ capacity: 2, descriptorWords: 1 });
  const replies = RingQueue.create({ capacity: 2, descriptorWords: 1 });
  const workers = (['ping', 'pong'] as const).map((role) => {
    const data: PingPongData = { role, rounds, requestBuffer: requests.buffer, replyBuffer: replies.buffer };
    return new Worker(PING_PONG_THREAD, { workerData: data });
  });
  t.after(() => Promise.all(workers.map((worker) => worker.terminate())));
  await Promise.all(
    workers.map(
      (worker) =>
        new Promise<void>((resolve, reject) => {
          worker.once('error', reject);
          worker.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`exit ${code}`))));
        }),
    ),
  );
  // Both sides slept on their inbox at least once: the hand-offs went through the doorbells.
  assert.ok(requests.words[kRingNotEmptyDoorbell] > 0, 'pong slept');
  assert.ok(replies.words[kRingNotEmptyDoorbell] > 0, 'ping slept');
  assert.equal(requests.size(), 0);
  assert.equal(replies.size(), 0);
});
