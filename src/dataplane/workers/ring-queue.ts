import { assert } from '../../assert.ts';
import { HornbillError } from '../../errors.ts';
import { Doorbell } from './doorbell.ts';

/**
 * A bounded multi-producer multi-consumer queue of fixed-size descriptors in shared memory
 * (Dmitry Vyukov's bounded MPMC queue: one sequence number per slot, two claim counters).
 *
 * The hot path allocates nothing: a producer claims a slot with `tryReserve()`, writes the
 * descriptor's 32-bit fields straight into `words[fieldBase(slot) + field]`, and publishes
 * it with `commit(slot)`; a consumer claims with `tryTake()`, reads the fields the same way,
 * and hands the slot back with `release(slot)`. `RingQueue.attach(buffer)` opens the same
 * queue in another thread from the SharedArrayBuffer alone.
 *
 * ```ts
 * const ring = RingQueue.create({ capacity: 64, descriptorWords: 4 });
 * const slot = ring.tryReserve();              // -1: full
 * if (slot >= 0) { ring.words[ring.fieldBase(slot)] = requestId; ring.commit(slot); }
 * // in a worker: const ring = RingQueue.attach(workerData.ringBuffer);
 * ```
 *
 * Layout (32-bit words from the queue's byte offset; fields 64 bytes apart where different
 * threads write them, so that producers and consumers do not share a cache line):
 */
export const kRingMagicField = 0; // 'HBRQ'
export const kRingVersionField = 1;
export const kRingCapacityField = 2; // slots, a power of two
export const kRingDescriptorWordsField = 3; // 32-bit fields per descriptor
export const kRingSlotStrideField = 4; // words per slot: 1 (sequence) + descriptor words
export const kRingClosedField = 5; // 0 open, 1 closed: no more descriptors will be pushed
export const kRingEnqueuePositionField = 16; // next position a producer claims (wraps at 2^32)
export const kRingDequeuePositionField = 32; // next position a consumer claims (wraps at 2^32)
export const kRingNotEmptyDoorbell = 48; // consumers sleep here; 2 words (doorbell.ts)
export const kRingNotFullDoorbell = 64; // producers sleep here; 2 words
export const kRingSlotsStart = 80; // slot i: words[80 + i*stride] sequence, then the fields

export const RING_MAGIC = 0x48425251;
export const RING_LAYOUT_VERSION = 1;
/** Bounds: a ring is at most 2^20 slots of at most 64 fields (≤ 260 MiB, far above any use here). */
export const RING_CAPACITY_MAX = 1 << 20;
export const RING_DESCRIPTOR_WORDS_MAX = 64;
/** Condition checks (Atomics loads) a blocking wait makes before it sleeps on the doorbell. */
export const RING_SPIN_LIMIT = 128;

export interface RingQueueOptions {
  /** Slots; a power of two from 2 to 2^20. */
  capacity: number;
  /** 32-bit fields per descriptor, 1 to 64. */
  descriptorWords: number;
}

export class RingQueue {
  /** The whole queue as 32-bit words; descriptor fields live at `fieldBase(slot) + field`. */
  readonly words: Int32Array;
  readonly buffer: SharedArrayBuffer;
  readonly byteOffset: number;
  readonly capacity: number;
  readonly descriptorWords: number;
  private readonly mask: number;
  private readonly stride: number;
  private readonly notEmpty: Doorbell;
  private readonly notFull: Doorbell;

  private constructor(
    buffer: SharedArrayBuffer,
    byteOffset: number,
    capacity: number,
    descriptorWords: number,
  ) {
    this.buffer = buffer;
    this.byteOffset = byteOffset;
    this.capacity = capacity;
    this.descriptorWords = descriptorWords;
    this.mask = capacity - 1;
    this.stride = 1 + descriptorWords;
    this.words = new Int32Array(buffer, byteOffset, RingQueue.bytesFor(capacity, descriptorWords) / 4);
    this.notEmpty = new Doorbell(this.words, kRingNotEmptyDoorbell);
    this.notFull = new Doorbell(this.words, kRingNotFullDoorbell);
  }

  /** Bytes a queue of this shape occupies in a SharedArrayBuffer. */
  static bytesFor(capacity: number, descriptorWords: number): number {
    return (kRingSlotsStart + capacity * (1 + descriptorWords)) * 4;
  }

  /** A new queue in a new SharedArrayBuffer of exactly `bytesFor` bytes. */
  static create(options: RingQueueOptions): RingQueue {
    validateShape(options.capacity, options.descriptorWords);
    const buffer = new SharedArrayBuffer(RingQueue.bytesFor(options.capacity, options.descriptorWords));
    return RingQueue.initialize(buffer, 0, options);
  }

  /**
   * Writes a fresh, empty queue into `buffer` at `byteOffset` (a multiple of 64). Only while
   * no other thread uses that memory: at creation, or to reuse the rings of a worker that
   * has exited.
   */
  static initialize(buffer: SharedArrayBuffer, byteOffset: number, options: RingQueueOptions): RingQueue {
    const { capacity, descriptorWords } = options;
    validateShape(capacity, descriptorWords);
    if (!(buffer instanceof SharedArrayBuffer)) {
      throw new HornbillError('INVALID_ARGUMENT', 'a ring queue lives in a SharedArrayBuffer');
    }
    if (
      byteOffset % 64 !== 0 ||
      byteOffset + RingQueue.bytesFor(capacity, descriptorWords) > buffer.byteLength
    ) {
      throw new HornbillError('INVALID_ARGUMENT', 'ring queue does not fit the buffer at this offset', {
        byteOffset,
        byteLength: buffer.byteLength,
      });
    }
    const queue = new RingQueue(buffer, byteOffset, capacity, descriptorWords);
    const words = queue.words;
    words.fill(0);
    words[kRingVersionField] = RING_LAYOUT_VERSION;
    words[kRingCapacityField] = capacity;
    words[kRingDescriptorWordsField] = descriptorWords;
    words[kRingSlotStrideField] = queue.stride;
    // Slot i starts with sequence i: free for the producer that claims position i.
    for (let slot = 0; slot < capacity; slot++) words[kRingSlotsStart + slot * queue.stride] = slot;
    // The magic goes last, with a sequentially consistent store: a thread that attaches after
    // seeing it (through postMessage or workerData, which also order memory) sees the rest.
    Atomics.store(words, kRingMagicField, RING_MAGIC);
    return queue;
  }

  /** Opens a queue that another thread created; the header is validated (WORKER_BUFFER_INVALID). */
  static attach(buffer: SharedArrayBuffer, byteOffset = 0): RingQueue {
    if (!(buffer instanceof SharedArrayBuffer)) {
      throw new HornbillError('WORKER_BUFFER_INVALID', 'ring queue buffer is not a SharedArrayBuffer');
    }
    if (byteOffset % 64 !== 0 || byteOffset < 0 || byteOffset + kRingSlotsStart * 4 > buffer.byteLength) {
      throw new HornbillError('WORKER_BUFFER_INVALID', 'ring queue buffer is too small for its header', {
        byteOffset,
        byteLength: buffer.byteLength,
      });
    }
    const header = new Int32Array(buffer, byteOffset, kRingSlotsStart);
    const magic = Atomics.load(header, kRingMagicField);
    const version = header[kRingVersionField];
    const capacity = header[kRingCapacityField];
    const descriptorWords = header[kRingDescriptorWordsField];
    const details = { magic, version, capacity, descriptorWords, byteLength: buffer.byteLength };
    if (magic !== RING_MAGIC) throw new HornbillError('WORKER_BUFFER_INVALID', 'not a ring queue', details);
    if (version !== RING_LAYOUT_VERSION) {
      throw new HornbillError('WORKER_BUFFER_INVALID', 'unknown ring queue layout version', details);
    }
    if (!isValidShape(capacity, descriptorWords) || header[kRingSlotStrideField] !== 1 + descriptorWords) {
      throw new HornbillError('WORKER_BUFFER_INVALID', 'ring queue header has an impossible shape', details);
    }
    if (byteOffset + RingQueue.bytesFor(capacity, descriptorWords) > buffer.byteLength) {
      throw new HornbillError(
        'WORKER_BUFFER_INVALID',
        'ring queue buffer is shorter than its header says',
        details,
      );
    }
    return new RingQueue(buffer, byteOffset, capacity, descriptorWords);
  }

  /** Word index of field 0 of the descriptor in `slot`. */
  fieldBase(slot: number): number {
    return kRingSlotsStart + slot * this.stride + 1;
  }

  /**
   * Claims the slot for the next position, or returns -1 when the queue is full. The caller
   * writes the descriptor fields, then calls `commit(slot)` without delay: consumers of
   * later positions wait for this slot (Vyukov's queue is not lock-free in the strict sense).
   */
  tryReserve(): number {
    const words = this.words;
    // Sequentially consistent load; a stale value is harmless, the CAS below re-checks it.
    let position = Atomics.load(words, kRingEnqueuePositionField);
    // Terminates: each extra round follows a failed CAS or a stale position, which means
    // another producer claimed a position meanwhile (lock-free progress of the group).
    for (;;) {
      const sequenceIndex = kRingSlotsStart + (position & this.mask) * this.stride;
      // Acquire side of the consumer's release(): seeing sequence == position means the
      // consumer of the previous lap has finished reading this slot's fields.
      const sequence = Atomics.load(words, sequenceIndex);
      const difference = (sequence - position) | 0;
      if (difference === 0) {
        // Claim the position. The CAS succeeds for exactly one producer, so no two producers
        // ever write the same slot in the same lap.
        const witnessed = Atomics.compareExchange(
          words,
          kRingEnqueuePositionField,
          position,
          (position + 1) | 0,
        );
        if (witnessed === position) return position & this.mask;
        position = witnessed;
      } else if (difference < 0) {
        // The slot still holds the descriptor of the previous lap: the queue is full.
        return -1;
      } else {
        // Another producer already claimed this position; catch up. If the position did not
        // move, a slot is ahead of the tail: impossible in a sound ring, so fail loudly
        // instead of spinning on corrupted memory.
        const current = Atomics.load(words, kRingEnqueuePositionField);
        assert(current !== position, 'ring slot sequence is ahead of the enqueue position');
        position = current;
      }
    }
  }

  /** Publishes the descriptor written into a reserved slot and wakes sleeping consumers. */
  commit(slot: number): void {
    assert(slot >= 0 && slot < this.capacity, 'ring slot in range');
    const sequenceIndex = kRingSlotsStart + slot * this.stride;
    // Only the reserving producer writes this word now, so a plain read sees its value.
    const sequence = this.words[sequenceIndex];
    // Release: the plain stores of the fields precede this sequentially consistent store in
    // program order; a consumer whose Atomics.load reads sequence+1 synchronizes with it and
    // therefore sees the fields (happens-before in the ECMAScript memory model).
    Atomics.store(this.words, sequenceIndex, (sequence + 1) | 0);
    this.notEmpty.ring();
  }

  /** Claims the oldest published descriptor, or returns -1 when none is published. */
  tryTake(): number {
    const words = this.words;
    let position = Atomics.load(words, kRingDequeuePositionField);
    // Terminates for the same reason as tryReserve: every retry follows another consumer's claim.
    for (;;) {
      const sequenceIndex = kRingSlotsStart + (position & this.mask) * this.stride;
      // Acquire side of commit(): seeing position+1 makes the producer's field stores visible.
      const sequence = Atomics.load(words, sequenceIndex);
      const difference = (sequence - ((position + 1) | 0)) | 0;
      if (difference === 0) {
        // Exactly one consumer wins the position: no descriptor is delivered twice.
        const witnessed = Atomics.compareExchange(
          words,
          kRingDequeuePositionField,
          position,
          (position + 1) | 0,
        );
        if (witnessed === position) return position & this.mask;
        position = witnessed;
      } else if (difference < 0) {
        // Not yet published (empty, or its producer is between reserve and commit).
        return -1;
      } else {
        // Another consumer took this position; catch up (a head that did not move is corruption).
        const current = Atomics.load(words, kRingDequeuePositionField);
        assert(current !== position, 'ring slot sequence is ahead of the dequeue position');
        position = current;
      }
    }
  }

  /** Hands a taken slot back to producers (after the fields were read) and wakes sleeping producers. */
  release(slot: number): void {
    assert(slot >= 0 && slot < this.capacity, 'ring slot in range');
    const sequenceIndex = kRingSlotsStart + slot * this.stride;
    // The slot holds position+1, written by its producer's commit, which this thread's
    // tryTake load observed; nobody else writes it until the store below.
    const sequence = this.words[sequenceIndex];
    // Release: the consumer's plain reads of the fields precede this store; the producer of
    // the next lap only writes after its Atomics.load sees position+capacity, so it cannot
    // overwrite fields still being read.
    Atomics.store(this.words, sequenceIndex, (sequence + this.mask) | 0);
    this.notFull.ring();
  }

  /** Copies `source` (descriptorWords values) into a new descriptor; false when full. */
  tryPush(source: ArrayLike<number>): boolean {
    const slot = this.tryReserve();
    if (slot < 0) return false;
    const base = this.fieldBase(slot);
    for (let field = 0; field < this.descriptorWords; field++) this.words[base + field] = source[field];
    this.commit(slot);
    return true;
  }

  /** Copies the oldest descriptor into `target` and frees its slot; false when empty. */
  tryPop(target: Int32Array): boolean {
    const slot = this.tryTake();
    if (slot < 0) return false;
    const base = this.fieldBase(slot);
    for (let field = 0; field < this.descriptorWords; field++) target[field] = this.words[base + field];
    this.release(slot);
    return true;
  }

  /** Descriptors published or being published; exact only while no thread is mid-operation. */
  size(): number {
    const enqueued = Atomics.load(this.words, kRingEnqueuePositionField);
    const dequeued = Atomics.load(this.words, kRingDequeuePositionField);
    const difference = (enqueued - dequeued) | 0;
    return Math.max(0, Math.min(this.capacity, difference));
  }

  /**
   * Marks the queue closed and wakes every sleeper. Call it after every producer's last
   * commit: consumers then take what is left and get -1 from takeBlocking once it is empty.
   */
  close(): void {
    // Sequentially consistent store, then ringAlways: a sleeper re-checks `isClosed` in its
    // loop, and the doorbell argument (doorbell.ts) applies with "closed" as the condition.
    Atomics.store(this.words, kRingClosedField, 1);
    this.notEmpty.ringAlways();
    this.notFull.ringAlways();
  }

  isClosed(): boolean {
    return Atomics.load(this.words, kRingClosedField) !== 0;
  }

  /**
   * Blocking reserve for worker threads: returns a reserved slot, or -1 once the queue is
   * closed. Waits with `waitUntilReservable` while the queue is full.
   */
  reserveBlocking(): number {
    for (;;) {
      const slot = this.tryReserve();
      if (slot >= 0) return slot;
      if (this.isClosed()) return -1;
      this.waitUntilReservable();
    }
  }

  /**
   * Blocking take for worker threads: returns a taken slot, or -1 only when the queue is
   * closed and nothing is left to take. Waits with `waitUntilTakeable` while it is empty.
   */
  takeBlocking(): number {
    for (;;) {
      const slot = this.tryTake();
      if (slot >= 0) return slot;
      // Closed means every producer has committed its last descriptor (see close), so an
      // empty answer after the flag was seen is final.
      if (this.isClosed()) return this.tryTake();
      this.waitUntilTakeable();
    }
  }

  /**
   * Blocks the calling worker thread until a descriptor is published at the head (or the
   * queue is closed): RING_SPIN_LIMIT checks first, then sleeps on the not-empty doorbell
   * (protocol in doorbell.ts). Another consumer may still take the descriptor first.
   */
  waitUntilTakeable(): void {
    this.notEmpty.waitUntil(this.takeableOrClosed, RING_SPIN_LIMIT);
  }

  /** Like `waitUntilTakeable`, for a free slot at the tail, on the not-full doorbell. */
  waitUntilReservable(): void {
    this.notFull.waitUntil(this.reservableOrClosed, RING_SPIN_LIMIT);
  }

  /**
   * Resolves when a descriptor is published at the head (or the queue is closed); never
   * blocks the thread, so the main thread may use it. One promise per sleep.
   */
  whenTakeable(): Promise<void> {
    return this.notEmpty.whenTrue(this.takeableOrClosed);
  }

  /** Resolves when the slot at the tail is free (or the queue is closed); never blocks the thread. */
  whenReservable(): Promise<void> {
    return this.notFull.whenTrue(this.reservableOrClosed);
  }

  private readonly takeableOrClosed = (): boolean => this.canTake() || this.isClosed();
  private readonly reservableOrClosed = (): boolean => this.canReserve() || this.isClosed();

  /**
   * Whether the descriptor at the head is published (a hint: another consumer may take it
   * first). Mirrors tryTake without the claim, including the reload of a stale head, so a
   * `false` is a true "empty at the head" at the moment of the sequence load. That matters
   * for the doorbell argument: the head becomes takeable only through commit() of the head
   * slot, which rings the not-empty doorbell.
   */
  canTake(): boolean {
    let position = Atomics.load(this.words, kRingDequeuePositionField);
    // Terminates: every retry follows a consumer's claim of the observed head.
    for (;;) {
      const sequence = Atomics.load(this.words, kRingSlotsStart + (position & this.mask) * this.stride);
      const difference = (sequence - ((position + 1) | 0)) | 0;
      if (difference === 0) return true;
      if (difference < 0) return false;
      const current = Atomics.load(this.words, kRingDequeuePositionField);
      assert(current !== position, 'ring slot sequence is ahead of the dequeue position');
      position = current;
    }
  }

  /**
   * Whether the slot at the tail is free (a hint: another producer may claim it first); the
   * tail becomes free only through release() of that slot, which rings the not-full doorbell.
   */
  canReserve(): boolean {
    let position = Atomics.load(this.words, kRingEnqueuePositionField);
    for (;;) {
      const sequence = Atomics.load(this.words, kRingSlotsStart + (position & this.mask) * this.stride);
      const difference = (sequence - position) | 0;
      if (difference === 0) return true;
      if (difference < 0) return false;
      const current = Atomics.load(this.words, kRingEnqueuePositionField);
      assert(current !== position, 'ring slot sequence is ahead of the enqueue position');
      position = current;
    }
  }
}

function isValidShape(capacity: number, descriptorWords: number): boolean {
  return (
    Number.isInteger(capacity) &&
    capacity >= 2 &&
    capacity <= RING_CAPACITY_MAX &&
    (capacity & (capacity - 1)) === 0 &&
    Number.isInteger(descriptorWords) &&
    descriptorWords >= 1 &&
    descriptorWords <= RING_DESCRIPTOR_WORDS_MAX
  );
}

function validateShape(capacity: number, descriptorWords: number): void {
  if (!isValidShape(capacity, descriptorWords)) {
    throw new HornbillError(
      'INVALID_ARGUMENT',
      `ring capacity must be a power of two in [2, ${RING_CAPACITY_MAX}] and descriptor words in [1, ${RING_DESCRIPTOR_WORDS_MAX}]`,
      { capacity, descriptorWords },
    );
  }
}
