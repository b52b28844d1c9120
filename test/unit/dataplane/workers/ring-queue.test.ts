import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  kRingCapacityField,
  kRingDequeuePositionField,
  kRingDescriptorWordsField,
  kRingEnqueuePositionField,
  kRingMagicField,
  kRingSlotStrideField,
  kRingSlotsStart,
  kRingVersionField,
  RingQueue,
} from '../../../../src/dataplane/workers/ring-queue.ts';
import { isHornbillError } from '../../../../src/errors.ts';

function push(ring: RingQueue, ...values: number[]): boolean {
  return ring.tryPush(values);
}

function pop(ring: RingQueue): number[] | undefined {
  const target = new Int32Array(ring.descriptorWords);
  return ring.tryPop(target) ? [...target] : undefined;
}

/** Moves both positions to `position` (as if that many descriptors had passed) on an empty ring. */
function startAt(ring: RingQueue, position: number): void {
  const stride = 1 + ring.descriptorWords;
  for (let step = 0; step < ring.capacity; step++) {
    const at = (position + step) | 0;
    ring.words[kRingSlotsStart + (at & (ring.capacity - 1)) * stride] = at;
  }
  ring.words[kRingEnqueuePositionField] = position | 0;
  ring.words[kRingDequeuePositionField] = position | 0;
}

describe('RingQueue, one thread', () => {
  test('FIFO; full at capacity, empty after the last pop', () => {
    const ring = RingQueue.create({ capacity: 4, descriptorWords: 2 });
    assert.equal(pop(ring), undefined);
    for (let value = 0; value < 4; value++) assert.ok(push(ring, value, value + 100));
    assert.equal(push(ring, 99, 99), false, 'full');
    assert.equal(ring.size(), 4);
    assert.equal(ring.canReserve(), false);
    for (let value = 0; value < 4; value++) assert.deepEqual(pop(ring), [value, value + 100]);
    assert.equal(pop(ring), undefined, 'empty');
    assert.equal(ring.canTake(), false);
    assert.equal(ring.size(), 0);
  });

  test('reserve and take hand out slots whose fields the caller writes and reads in place', () => {
    const ring = RingQueue.create({ capacity: 2, descriptorWords: 3 });
    const first = ring.tryReserve();
    const second = ring.tryReserve();
    assert.notEqual(first, second);
    assert.equal(ring.tryReserve(), -1);
    // A later slot committed first is not visible until the earlier one is: FIFO by claim order.
    ring.words[ring.fieldBase(second) + 2] = 22;
    ring.commit(second);
    assert.equal(ring.tryTake(), -1);
    ring.words[ring.fieldBase(first) + 2] = 11;
    ring.commit(first);
    const taken = ring.tryTake();
    assert.equal(ring.words[ring.fieldBase(taken) + 2], 11);
    assert.equal(ring.tryReserve(), -1, 'a taken slot is reusable only after release');
    ring.release(taken);
    assert.ok(ring.tryReserve() >= 0);
  });

  test('wraps around many times, and across the 2^31 and 2^32 position boundaries', () => {
    for (const start of [0, 0x7ffffff0, -16]) {
      const ring = RingQueue.create({ capacity: 8, descriptorWords: 1 });
      startAt(ring, start);
      let next = 0;
      let expected = 0;
      for (let round = 0; round < 20_000; round++) {
        const burst = 1 + (round % 8);
        for (let index = 0; index < burst; index++) assert.ok(push(ring, next++));
        for (let index = 0; index < burst; index++) assert.deepEqual(pop(ring), [expected++]);
      }
      assert.equal(pop(ring), undefined);
      assert.ok(expected > 80_000, 'more than 10,000 laps of the ring');
    }
  });

  test('matches a model under any interleaving of reserve, commit, take and release (fast-check)', () => {
    type Command =
      | { kind: 'reserve' }
      | { kind: 'commit'; pick: number }
      | { kind: 'take' }
      | { kind: 'release'; pick: number };
    const command = fc.oneof(
      fc.constant<Command>({ kind: 'reserve' }),
      fc.nat(7).map<Command>((pick) => ({ kind: 'commit', pick })),
      fc.constant<Command>({ kind: 'take' }),
      fc.nat(7).map<Command>((pick) => ({ kind: 'release', pick })),
    );
    fc.assert(
      fc.property(
        fc.constantFrom(2, 4, 8),
        fc.array(command, { minLength: 10, maxLength: 400, size: 'max' }),
        (capacity, commands) => {
          const ring = RingQueue.create({ capacity, descriptorWords: 1 });
          // Model: positions in claim order; a slot is reusable when the position one lap back was released.
          const state: ('reserved' | 'committed' | 'taken' | 'released')[] = [];
          const slotOf: number[] = [];
          let head = 0;
          const reserved: number[] = [];
          const taken: number[] = [];
          for (const step of commands) {
            if (step.kind === 'reserve') {
              const tail = state.length;
              const fits = tail < capacity || state[tail - capacity] === 'released';
              const slot = ring.tryReserve();
              assert.equal(slot >= 0, fits);
              if (slot >= 0) {
                assert.equal(slot, tail % capacity);
                ring.words[ring.fieldBase(slot)] = tail;
                state.push('reserved');
                slotOf.push(slot);
                reserved.push(tail);
              }
            } else if (step.kind === 'commit' && reserved.length > 0) {
              const position = reserved.splice(step.pick % reserved.length, 1)[0];
              ring.commit(slotOf[position]);
              state[position] = 'committed';
            } else if (step.kind === 'take') {
              const available = head < state.length && state[head] === 'committed';
              const slot = ring.tryTake();
              assert.equal(slot >= 0, available);
              if (slot >= 0) {
                assert.equal(ring.words[ring.fieldBase(slot)], head, 'the oldest descriptor');
                state[head] = 'taken';
                taken.push(head);
                head++;
              }
            } else if (step.kind === 'release' && taken.length > 0) {
              const position = taken.splice(step.pick % taken.length, 1)[0];
              ring.release(slotOf[position]);
              state[position] = 'released';
            }
            assert.equal(ring.canTake(), head < state.length && state[head] === 'committed');
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  test('close: blocking calls return -1 once closed and drained; descriptors pushed before close still arrive', async () => {
    const ring = RingQueue.create({ capacity: 4, descriptorWords: 1 });
    assert.ok(push(ring, 7));
    ring.close();
    assert.ok(ring.isClosed());
    const slot = ring.takeBlocking();
    assert.equal(ring.words[ring.fieldBase(slot)], 7);
    ring.release(slot);
    assert.equal(ring.takeBlocking(), -1);
    await ring.whenTakeable(); // resolves at once: closed
    for (let index = 0; index < 4; index++) assert.ok(push(ring, index));
    assert.equal(ring.reserveBlocking(), -1, 'full and closed');
    await ring.whenReservable();
  });

  test('attach opens the same queue; a bad header or buffer is WORKER_BUFFER_INVALID', () => {
    const ring = RingQueue.create({ capacity: 16, descriptorWords: 5 });
    const other = RingQueue.attach(ring.buffer);
    assert.equal(other.capacity, 16);
    assert.equal(other.descriptorWords, 5);
    assert.ok(push(ring, 1, 2, 3, 4, 5));
    assert.deepEqual(pop(other), [1, 2, 3, 4, 5]);

    const corruptions: [string, (words: Int32Array) => void][] = [
      ['magic', (words) => (words[kRingMagicField] = 0x12345678)],
      ['version', (words) => (words[kRingVersionField] = 99)],
      ['capacity not a power of two', (words) => (words[kRingCapacityField] = 12)],
      ['capacity too large for the buffer', (words) => (words[kRingCapacityField] = 1024)],
      ['capacity zero', (words) => (words[kRingCapacityField] = 0)],
      ['descriptor words', (words) => (words[kRingDescriptorWordsField] = 0)],
      ['descriptor words beyond the bound', (words) => (words[kRingDescriptorWordsField] = 65)],
      ['stride', (words) => (words[kRingSlotStrideField] = 5)],
    ];
    for (const [what, corrupt] of corruptions) {
      const copy = new SharedArrayBuffer(ring.buffer.byteLength);
      new Int32Array(copy).set(new Int32Array(ring.buffer));
      corrupt(new Int32Array(copy));
      assert.throws(
        () => RingQueue.attach(copy),
        (error) => isHornbillError(error, 'WORKER_BUFFER_INVALID'),
        what,
      );
    }
    const short = new SharedArrayBuffer(ring.buffer.byteLength - 4);
    new Int32Array(short).set(new Int32Array(ring.buffer).subarray(0, short.byteLength / 4));
    assert.throws(
      () => RingQueue.attach(short),
      (error) => isHornbillError(error, 'WORKER_BUFFER_INVALID'),
    );
    assert.throws(
      () => RingQueue.attach(new SharedArrayBuffer(16)),
      (error) => isHornbillError(error, 'WORKER_BUFFER_INVALID'),
    );
    assert.throws(
      () => RingQueue.attach(new ArrayBuffer(4096) as unknown as SharedArrayBuffer),
      (error) => isHornbillError(error, 'WORKER_BUFFER_INVALID'),
    );
    assert.throws(
      () => RingQueue.attach(ring.buffer, 4),
      (error) => isHornbillError(error, 'WORKER_BUFFER_INVALID'),
      'unaligned offset',
    );
  });

  test('create rejects shapes outside the bounds', () => {
    for (const [capacity, descriptorWords] of [
      [3, 1],
      [1, 1],
      [2 ** 21, 1],
      [8, 0],
      [8, 65],
      [8, 1.5],
    ]) {
      assert.throws(
        () => RingQueue.create({ capacity, descriptorWords }),
        (error) => isHornbillError(error, 'INVALID_ARGUMENT'),
        `${capacity} × ${descriptorWords}`,
      );
    }
  });
});
