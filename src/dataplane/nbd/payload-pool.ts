import { assert } from '../../assert.ts';
import { HornbillError } from '../../errors.ts';

/** Smallest buffer handed out (a 512-byte request takes a 4 KiB buffer). */
const SMALLEST_CLASS_SHIFT = 12;

/** Something blocked on the pool: told when a buffer of the size it asked for can be had. */
export interface PayloadWaiter {
  /** Called once, synchronously from `release`; `acquire(lengthBytes)` succeeds during this call. */
  onPayloadAvailable(): void;
}

interface WaitEntry {
  waiter: PayloadWaiter;
  lengthBytes: number;
}

/**
 * A bounded pool of payload buffers shared by every connection of a server: WRITE payloads
 * are received into them, READ data is read into them, block status replies are built in
 * them. Buffers come in power-of-two size classes from 4 KiB up to `maximumBufferBytes`,
 * are allocated on first use and kept for reuse afterwards, so the hot path allocates
 * nothing once the pool is warm.
 *
 * `capacityBytes` bounds the bytes held (in use plus kept for reuse). When a request cannot
 * be served, `acquire` returns null and the caller waits (`waitFor`): that is the
 * back-pressure that stops a connection from reading the socket. Waiters are served in
 * arrival order, so a large request is never starved by small ones. Because capacity is at
 * least one maximum buffer and every buffer in use is returned when its request ends, a
 * waiter always makes progress.
 */
export class PayloadPool {
  readonly capacityBytes: number;
  readonly maximumBufferBytes: number;
  private readonly freeBuffers: Buffer[][];
  private bytesInUseCount = 0;
  private bytesKeptCount = 0;
  private buffersInUseCount = 0;
  private readonly waiters: WaitEntry[] = [];
  private waking = false;

  constructor(options: { capacityBytes: number; maximumBufferBytes: number }) {
    const { capacityBytes, maximumBufferBytes } = options;
    if (!Number.isSafeInteger(maximumBufferBytes) || !isPowerOfTwo(maximumBufferBytes)) {
      throw new HornbillError('INVALID_ARGUMENT', 'the largest payload buffer must be a power of two', {
        maximumBufferBytes,
      });
    }
    if (maximumBufferBytes < 1 << SMALLEST_CLASS_SHIFT || maximumBufferBytes > 2 ** 30) {
      throw new HornbillError('INVALID_ARGUMENT', 'the largest payload buffer must be 4 KiB to 1 GiB', {
        maximumBufferBytes,
      });
    }
    if (!Number.isSafeInteger(capacityBytes) || capacityBytes < maximumBufferBytes) {
      throw new HornbillError(
        'INVALID_ARGUMENT',
        'the payload pool must hold at least one buffer of the largest payload',
        { capacityBytes, maximumBufferBytes },
      );
    }
    this.capacityBytes = capacityBytes;
    this.maximumBufferBytes = maximumBufferBytes;
    const classCount = Math.log2(maximumBufferBytes) - SMALLEST_CLASS_SHIFT + 1;
    this.freeBuffers = Array.from({ length: classCount }, () => []);
  }

  get bytesInUse(): number {
    return this.bytesInUseCount;
  }

  get buffersInUse(): number {
    return this.buffersInUseCount;
  }

  /** Bytes of free buffers kept for reuse. */
  get bytesKept(): number {
    return this.bytesKeptCount;
  }

  get waiterCount(): number {
    return this.waiters.length;
  }

  /** True if `acquire(lengthBytes)` would succeed now. */
  canAcquire(lengthBytes: number): boolean {
    const classIndex = this.classIndexFor(lengthBytes);
    if (this.freeBuffers[classIndex].length > 0) return true;
    return this.bytesInUseCount + this.classBytes(classIndex) <= this.capacityBytes;
  }

  /**
   * A buffer of at least `lengthBytes` (its length is the size class), or null when the pool
   * is at capacity. Its contents are whatever the previous user left: callers fill it.
   */
  acquire(lengthBytes: number): Buffer | null {
    const classIndex = this.classIndexFor(lengthBytes);
    const classBytes = this.classBytes(classIndex);
    let buffer = this.freeBuffers[classIndex].pop();
    if (buffer !== undefined) {
      this.bytesKeptCount -= classBytes;
    } else {
      if (this.bytesInUseCount + classBytes > this.capacityBytes) return null;
      this.evictKeptBuffers(classBytes);
      buffer = Buffer.alloc(classBytes);
    }
    this.bytesInUseCount += classBytes;
    this.buffersInUseCount++;
    assert(this.bytesInUseCount + this.bytesKeptCount <= this.capacityBytes, 'payload pool over capacity');
    return buffer;
  }

  release(buffer: Buffer): void {
    const classIndex = this.classIndexFor(buffer.length);
    const classBytes = this.classBytes(classIndex);
    assert(buffer.length === classBytes, 'released a buffer that did not come from the pool');
    assert(this.buffersInUseCount > 0 && this.bytesInUseCount >= classBytes, 'payload pool double release');
    this.bytesInUseCount -= classBytes;
    this.buffersInUseCount--;
    this.freeBuffers[classIndex].push(buffer);
    this.bytesKeptCount += classBytes;
    this.wakeWaiters();
  }

  /** Queues `waiter` until a buffer of `lengthBytes` can be had. A waiter waits for one buffer at a time. */
  waitFor(lengthBytes: number, waiter: PayloadWaiter): void {
    this.classIndexFor(lengthBytes);
    assert(!this.waiters.some((entry) => entry.waiter === waiter), 'payload waiter queued twice');
    this.waiters.push({ waiter, lengthBytes });
  }

  /** Removes a waiter (its connection closed). Harmless if it is not queued. */
  cancelWait(waiter: PayloadWaiter): void {
    const index = this.waiters.findIndex((entry) => entry.waiter === waiter);
    if (index >= 0) this.waiters.splice(index, 1);
  }

  /** Drops every kept buffer (used when a server closes). Buffers in use are unaffected. */
  trim(): void {
    for (const list of this.freeBuffers) list.length = 0;
    this.bytesKeptCount = 0;
  }

  private wakeWaiters(): void {
    if (this.waking) return; // a waiter released a buffer while being woken: the loop below goes on
    this.waking = true;
    try {
      while (this.waiters.length > 0 && this.canAcquire(this.waiters[0].lengthBytes)) {
        const entry = this.waiters.shift()!;
        entry.waiter.onPayloadAvailable();
      }
    } finally {
      this.waking = false;
    }
  }

  /** Frees kept buffers, largest first, until `neededBytes` more fit under the capacity. */
  private evictKeptBuffers(neededBytes: number): void {
    for (let classIndex = this.freeBuffers.length - 1; classIndex >= 0; classIndex--) {
      const list = this.freeBuffers[classIndex];
      while (
        list.length > 0 &&
        this.bytesInUseCount + this.bytesKeptCount + neededBytes > this.capacityBytes
      ) {
        list.pop();
        this.bytesKeptCount -= this.classBytes(classIndex);
      }
    }
  }

  private classIndexFor(lengthBytes: number): number {
    assert(
      Number.isSafeInteger(lengthBytes) && lengthBytes > 0 && lengthBytes <= this.maximumBufferBytes,
      'payload length out of the pool range',
    );
    // Bits needed for lengthBytes - 1 = the exponent of the smallest power of two >= lengthBytes.
    const shift = Math.max(SMALLEST_CLASS_SHIFT, 32 - Math.clz32(lengthBytes - 1));
    return shift - SMALLEST_CLASS_SHIFT;
  }

  private classBytes(classIndex: number): number {
    return 2 ** (classIndex + SMALLEST_CLASS_SHIFT);
  }
}

function isPowerOfTwo(value: number): boolean {
  return value > 0 && 2 ** Math.round(Math.log2(value)) === value;
}
