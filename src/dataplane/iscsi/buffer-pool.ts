import { assert } from '../../assert.ts';

const SMALLEST_CLASS_BYTES = 4096;

/**
 * Data buffers for SCSI commands, in power-of-two size classes from 4 KiB up to the largest
 * buffer a command may need. Buffers are allocated on first use and recycled, so a warm
 * connection allocates nothing per command.
 *
 * Bound: at most `maxBuffers` are lent at once (the command window of the connection), so
 * memory never exceeds maxBuffers × maxBufferBytes (64 × 1 MiB with the defaults) plus the
 * free buffers kept, and a lent buffer is always available to every accepted command:
 * the window is the back-pressure.
 */
export class BufferPool {
  readonly maxBufferBytes: number;
  readonly maxBuffers: number;
  private readonly freeByClass: Buffer[][];
  private lent = 0;

  constructor(maxBufferBytes: number, maxBuffers: number) {
    assert(Number.isSafeInteger(maxBufferBytes) && maxBufferBytes >= SMALLEST_CLASS_BYTES, 'buffer size');
    assert(Number.isSafeInteger(maxBuffers) && maxBuffers > 0, 'buffer count');
    this.maxBufferBytes = maxBufferBytes;
    this.maxBuffers = maxBuffers;
    const classes = classIndex(maxBufferBytes) + 1;
    this.freeByClass = Array.from({ length: classes }, () => []);
  }

  get lentCount(): number {
    return this.lent;
  }

  /** A buffer of at least `bytes` (≤ maxBufferBytes); null when `maxBuffers` are already lent. */
  take(bytes: number): Buffer | null {
    assert(bytes > 0 && bytes <= this.maxBufferBytes, 'buffer request out of range');
    if (this.lent >= this.maxBuffers) return null;
    const index = classIndex(bytes);
    const buffer = this.freeByClass[index].pop() ?? Buffer.allocUnsafe(classBytes(index));
    this.lent++;
    return buffer;
  }

  give(buffer: Buffer): void {
    assert(this.lent > 0, 'returned more buffers than were lent');
    this.lent--;
    const index = classIndex(buffer.length);
    assert(classBytes(index) === buffer.length, 'foreign buffer');
    // Keep at most maxBuffers free per class: enough for a full window of that size.
    if (this.freeByClass[index].length < this.maxBuffers) this.freeByClass[index].push(buffer);
  }

  /** Drops every free buffer (the connection is closing). */
  clear(): void {
    for (const list of this.freeByClass) list.length = 0;
  }
}

function classIndex(bytes: number): number {
  let index = 0;
  let size = SMALLEST_CLASS_BYTES;
  while (size < bytes) {
    size *= 2;
    index++;
  }
  return index;
}

function classBytes(index: number): number {
  return SMALLEST_CLASS_BYTES * 2 ** index;
}
