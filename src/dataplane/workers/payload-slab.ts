import { assert } from '../../assert.ts';
import { HornbillError } from '../../errors.ts';
import { Doorbell } from './doorbell.ts';

/**
 * Fixed-size payload chunks in one SharedArrayBuffer, shared by the frontend thread and the
 * workers, so that an I/O descriptor carries (first chunk, length) instead of the bytes.
 *
 * Free chunks are the set bits of a bitmap, and a counter says how many of them are not yet
 * promised to an allocation. An allocation first reserves its chunks in the counter (one
 * CAS: all or nothing), then clears that many bits with CAS; a free sets its bits with
 * Atomics.or, then adds to the counter. So the set bits never number fewer than the
 * counter, a reservation always finds its bits, and waiters can wait for "n chunks free".
 * Lock-free, and no thread can wedge it: a thread that dies mid-way loses at most the
 * chunks it held or had reserved, while the others carry on. (A RingQueue of free indexes
 * was the first design; the stress test showed its flaw: a thread descheduled between
 * claiming a slot and releasing it makes the ring report "full" to every freer once the
 * tail laps around to that slot, however large the ring. See docs/worker-rings.md.)
 *
 * A payload larger than one chunk is a chain: `nextChunk(index)` gives the following chunk,
 * -1 ends the chain. Chains instead of contiguous runs: no fragmentation and no multi-bit
 * claims; allocation and free stay O(chunks) single-word operations. The price is
 * scatter-gather above the chunk size; with a chunk size that is a multiple of the 4 KiB
 * block, each chunk covers whole blocks (a 1 MiB write is eight 128 KiB pieces).
 *
 * ```ts
 * const slab = PayloadSlab.create({ chunkSizeBytes: 128 * 1024, chunkCount: 256 });
 * const first = slab.tryAllocate(source.length);   // -1: not enough free chunks now
 * slab.copyIn(first, source);
 * // another thread: slab.chunkBytes(first) is a zero-copy Buffer over the chunk
 * slab.free(first);
 * ```
 *
 * Layout (32-bit words from byte 0):
 */
export const kSlabMagicField = 0; // 'HBSL'
export const kSlabVersionField = 1;
export const kSlabChunkSizeField = 2; // bytes per chunk
export const kSlabChunkCountField = 3;
export const kSlabDataOffsetField = 4; // byte offset of chunk 0 (a multiple of 4096)
export const kSlabFreeCountField = 6; // chunks free and not reserved by an allocation in progress
export const kSlabSearchHintField = 8; // bitmap word where the last allocation found a chunk
export const kSlabFreedDoorbell = 16; // 2 words: allocators wait here for a free (doorbell.ts)
export const kSlabTablesStart = 32; // words[32 + i]: next chunk of i in its chain (-1: last)
// then words[32 + chunkCount + w]: free bitmap, bit b of word w set = chunk 32w+b is free

export const SLAB_MAGIC = 0x4842534c;
export const SLAB_LAYOUT_VERSION = 1;
/** Bounds: chunk sizes 64 B to 16 MiB (multiples of 64), at most 65,536 chunks, at most 1 GiB of data. */
export const SLAB_CHUNK_SIZE_MAX = 16 * 1024 * 1024;
export const SLAB_CHUNK_COUNT_MAX = 65536;
export const SLAB_DATA_BYTES_MAX = 1024 * 1024 * 1024;
/** Passes over the free bitmap after which a reserved chunk that cannot be found is a bug. */
export const SLAB_CLAIM_PASSES_MAX = 10_000;
/** Free-counter checks before an allocation that waits goes to sleep. */
export const SLAB_SPIN_LIMIT = 64;

export interface PayloadSlabOptions {
  /** Bytes per chunk: a multiple of 64 (use a multiple of 4096 for block I/O); default 128 KiB. */
  chunkSizeBytes?: number;
  /** Chunks; default 256 (32 MiB with the default chunk size). */
  chunkCount?: number;
}

export class PayloadSlab {
  readonly buffer: SharedArrayBuffer;
  readonly chunkSizeBytes: number;
  readonly chunkCount: number;
  /** The largest payload one allocation can hold (every chunk chained, below 2 GiB). */
  readonly maxPayloadBytes: number;
  private readonly words: Int32Array;
  private readonly bitmapStart: number;
  private readonly bitmapWords: number;
  private readonly dataOffset: number;
  private readonly freed: Doorbell;
  /** Per-thread zero-copy views, created on first use of each chunk (bounded by chunkCount). */
  private readonly views: (Buffer | undefined)[];

  private constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer;
    const header = new Int32Array(buffer, 0, kSlabTablesStart);
    this.chunkSizeBytes = header[kSlabChunkSizeField];
    this.chunkCount = header[kSlabChunkCountField];
    this.dataOffset = header[kSlabDataOffsetField];
    this.maxPayloadBytes = Math.min(this.chunkSizeBytes * this.chunkCount, 0x7fffffff);
    this.bitmapStart = kSlabTablesStart + this.chunkCount;
    this.bitmapWords = Math.ceil(this.chunkCount / 32);
    this.words = new Int32Array(buffer, 0, this.bitmapStart + this.bitmapWords);
    this.freed = new Doorbell(this.words, kSlabFreedDoorbell);
    this.views = new Array(this.chunkCount).fill(undefined);
  }

  static create(options: PayloadSlabOptions = {}): PayloadSlab {
    const chunkSizeBytes = options.chunkSizeBytes ?? 128 * 1024;
    const chunkCount = options.chunkCount ?? 256;
    if (!isValidShape(chunkSizeBytes, chunkCount)) {
      throw new HornbillError(
        'INVALID_ARGUMENT',
        `slab chunks must be multiples of 64 bytes up to ${SLAB_CHUNK_SIZE_MAX}, 1 to ${SLAB_CHUNK_COUNT_MAX} of them, at most ${SLAB_DATA_BYTES_MAX} bytes`,
        { chunkSizeBytes, chunkCount },
      );
    }
    const dataOffset = dataOffsetFor(chunkCount);
    const buffer = new SharedArrayBuffer(dataOffset + chunkSizeBytes * chunkCount);
    const bitmapStart = kSlabTablesStart + chunkCount;
    const words = new Int32Array(buffer, 0, bitmapStart + Math.ceil(chunkCount / 32));
    words[kSlabVersionField] = SLAB_LAYOUT_VERSION;
    words[kSlabChunkSizeField] = chunkSizeBytes;
    words[kSlabChunkCountField] = chunkCount;
    words[kSlabDataOffsetField] = dataOffset;
    words.fill(-1, kSlabTablesStart, bitmapStart);
    // Every chunk starts free; the bits past chunkCount in the last word stay 0 forever.
    words[kSlabFreeCountField] = chunkCount;
    for (let index = 0; index < chunkCount; index++) words[bitmapStart + (index >>> 5)] |= 1 << (index & 31);
    // Magic last, with a sequentially consistent store, as in RingQueue.initialize.
    Atomics.store(words, kSlabMagicField, SLAB_MAGIC);
    return new PayloadSlab(buffer);
  }

  /** Opens a slab another thread created; the header is validated (WORKER_BUFFER_INVALID). */
  static attach(buffer: SharedArrayBuffer): PayloadSlab {
    if (!(buffer instanceof SharedArrayBuffer) || buffer.byteLength < kSlabTablesStart * 4) {
      throw new HornbillError(
        'WORKER_BUFFER_INVALID',
        'slab buffer is not a SharedArrayBuffer with a header',
      );
    }
    const header = new Int32Array(buffer, 0, kSlabTablesStart);
    const chunkSizeBytes = header[kSlabChunkSizeField];
    const chunkCount = header[kSlabChunkCountField];
    const details = {
      magic: Atomics.load(header, kSlabMagicField),
      chunkSizeBytes,
      chunkCount,
      byteLength: buffer.byteLength,
    };
    if (details.magic !== SLAB_MAGIC || header[kSlabVersionField] !== SLAB_LAYOUT_VERSION) {
      throw new HornbillError(
        'WORKER_BUFFER_INVALID',
        'not a payload slab of a known layout version',
        details,
      );
    }
    if (!isValidShape(chunkSizeBytes, chunkCount)) {
      throw new HornbillError('WORKER_BUFFER_INVALID', 'slab header has an impossible shape', details);
    }
    const dataOffset = dataOffsetFor(chunkCount);
    if (
      header[kSlabDataOffsetField] !== dataOffset ||
      buffer.byteLength < dataOffset + chunkSizeBytes * chunkCount
    ) {
      throw new HornbillError(
        'WORKER_BUFFER_INVALID',
        'slab offsets or size disagree with its header',
        details,
      );
    }
    return new PayloadSlab(buffer);
  }

  /** Chunks a payload of `lengthBytes` needs (at least 1). */
  chunksFor(lengthBytes: number): number {
    return lengthBytes <= this.chunkSizeBytes ? 1 : Math.ceil(lengthBytes / this.chunkSizeBytes);
  }

  /**
   * Allocates a chain for `lengthBytes` (1 to maxPayloadBytes) and returns its first chunk,
   * or -1 when fewer chunks than needed are free right now (all or nothing, so a waiting
   * allocator never holds chunks). Wait with `whenAvailable` (main thread) or use
   * `allocateBlocking` (workers).
   */
  tryAllocate(lengthBytes: number): number {
    if (!Number.isInteger(lengthBytes) || lengthBytes < 1 || lengthBytes > this.maxPayloadBytes) {
      throw new HornbillError(
        'INVALID_ARGUMENT',
        `payload length must be 1 to ${this.maxPayloadBytes} bytes`,
        {
          lengthBytes,
        },
      );
    }
    const needed = this.chunksFor(lengthBytes);
    if (!this.reserve(needed)) return -1;
    const words = this.words;
    let first = -1;
    let previous = -1;
    for (let taken = 0; taken < needed; taken++) {
      const index = this.claimReservedChunk();
      // Plain stores: the chain reaches other threads through the ring commit (or message)
      // that carries `first`, which orders these stores before their reads.
      words[kSlabTablesStart + index] = -1;
      if (previous >= 0) words[kSlabTablesStart + previous] = index;
      else first = index;
      previous = index;
    }
    return first;
  }

  /** Blocking allocation for worker threads: sleeps on the freed doorbell until the chain fits. */
  allocateBlocking(lengthBytes: number): number {
    for (;;) {
      const first = this.tryAllocate(lengthBytes);
      if (first >= 0) return first;
      const needed = this.chunksFor(lengthBytes);
      this.freed.waitUntil(() => Atomics.load(this.words, kSlabFreeCountField) >= needed, SLAB_SPIN_LIMIT);
    }
  }

  /**
   * Resolves when a payload of `lengthBytes` fits (the chunks may still go to a faster
   * allocator: retry tryAllocate); never blocks the thread. One promise per sleep.
   */
  whenAvailable(lengthBytes: number): Promise<void> {
    const needed = this.chunksFor(lengthBytes);
    return this.freed.whenTrue(() => Atomics.load(this.words, kSlabFreeCountField) >= needed);
  }

  /** Gives a whole chain back. A chunk freed twice is an INTERNAL error (a bug in the caller). */
  free(firstChunk: number): void {
    const words = this.words;
    let index = firstChunk;
    let links = 0;
    // Bounded: a chain has at most chunkCount links; more means a cycle (a bug).
    for (; index !== -1; links++) {
      assert(links < this.chunkCount, 'payload chain ends');
      assert(index >= 0 && index < this.chunkCount, 'payload chain holds chunk indexes');
      // Read the link before the bit is set: afterwards another thread may reuse the chunk.
      const next = words[kSlabTablesStart + index];
      const bit = 1 << (index & 31);
      // Sequentially consistent read-modify-write: this thread's accesses to the chunk come
      // before it in program order, and the allocator's CAS that clears the bit reads from it
      // (or from a later read-modify-write of the word), so those accesses happen before its own.
      const before = Atomics.or(words, this.bitmapStart + (index >>> 5), bit);
      if ((before & bit) !== 0) {
        throw new HornbillError('INTERNAL', 'payload chunk freed twice or never allocated', { chunk: index });
      }
      index = next;
    }
    // After the bits: the counter never promises a chunk whose bit is not set yet.
    Atomics.add(words, kSlabFreeCountField, links);
    this.freed.ring();
  }

  /** The chunk after `chunkIndex` in its chain, or -1. */
  nextChunk(chunkIndex: number): number {
    return this.words[kSlabTablesStart + chunkIndex];
  }

  /** A zero-copy Buffer (a Uint8Array) over the whole chunk; the same object every time in this thread. */
  chunkBytes(chunkIndex: number): Buffer {
    assert(chunkIndex >= 0 && chunkIndex < this.chunkCount, 'chunk index in range');
    let view = this.views[chunkIndex];
    if (view === undefined) {
      view = Buffer.from(
        this.buffer,
        this.dataOffset + chunkIndex * this.chunkSizeBytes,
        this.chunkSizeBytes,
      );
      this.views[chunkIndex] = view;
    }
    return view;
  }

  /** Copies `source` into the chain that starts at `firstChunk` (chunk by chunk). */
  copyIn(firstChunk: number, source: Uint8Array): void {
    let index = firstChunk;
    for (let done = 0; done < source.length; done += this.chunkSizeBytes) {
      assert(index !== -1, 'the chain holds the payload');
      const end = Math.min(source.length, done + this.chunkSizeBytes);
      this.chunkBytes(index).set(source.subarray(done, end));
      index = this.nextChunk(index);
    }
  }

  /** Copies the first `target.length` bytes of the chain into `target`. */
  copyOut(firstChunk: number, target: Uint8Array): void {
    let index = firstChunk;
    for (let done = 0; done < target.length; done += this.chunkSizeBytes) {
      assert(index !== -1, 'the chain holds the payload');
      const length = Math.min(target.length - done, this.chunkSizeBytes);
      target.set(this.chunkBytes(index).subarray(0, length), done);
      index = this.nextChunk(index);
    }
  }

  /** Free chunks not reserved by an allocation in progress; exact while nobody allocates or frees. */
  freeCount(): number {
    return Atomics.load(this.words, kSlabFreeCountField);
  }

  /** Set bits of the free bitmap (a population count): for tests and audits. */
  freeBitCount(): number {
    let count = 0;
    for (let word = 0; word < this.bitmapWords; word++) {
      let bits = Atomics.load(this.words, this.bitmapStart + word);
      for (; bits !== 0; bits &= bits - 1) count++;
    }
    return count;
  }

  /** Whether chunk `chunkIndex` is free: for tests and audits. */
  isFree(chunkIndex: number): boolean {
    const bits = Atomics.load(this.words, this.bitmapStart + (chunkIndex >>> 5));
    return (bits & (1 << (chunkIndex & 31))) !== 0;
  }

  /** Takes `needed` chunks from the free counter, all or none (a CAS loop; lock-free). */
  private reserve(needed: number): boolean {
    const words = this.words;
    let available = Atomics.load(words, kSlabFreeCountField);
    // Terminates: a failed CAS means another thread changed the counter (allocated or freed).
    for (;;) {
      if (available < needed) return false;
      const witnessed = Atomics.compareExchange(words, kSlabFreeCountField, available, available - needed);
      if (witnessed === available) return true;
      available = witnessed;
    }
  }

  /**
   * Clears one set bit, which a reservation guarantees to exist: scans the bitmap from the
   * search hint and clears the lowest set bit of the first non-zero word with a CAS. A pass
   * (≤ 2,048 words) can miss only because other threads cleared bits ahead of the scan and
   * freed bits behind it, that is, made progress. Bounded all the same: SLAB_CLAIM_PASSES_MAX
   * fruitless passes mean the bitmap and the counter disagree (a bug), not bad luck.
   */
  private claimReservedChunk(): number {
    const words = this.words;
    let word = Atomics.load(words, kSlabSearchHintField);
    if (word < 0 || word >= this.bitmapWords) word = 0;
    const visitsMax = SLAB_CLAIM_PASSES_MAX * this.bitmapWords;
    for (let visited = 0; ; visited++) {
      assert(visited < visitsMax, 'a reserved chunk has its bit set in the free bitmap');
      const wordIndex = this.bitmapStart + word;
      let bits = Atomics.load(words, wordIndex);
      while (bits !== 0) {
        const lowest = bits & -bits;
        // Sequentially consistent CAS: exactly one thread clears a given bit, so a chunk has
        // one owner; reading the bit set orders the last freer's accesses before this one's.
        const witnessed = Atomics.compareExchange(words, wordIndex, bits, bits & ~lowest);
        if (witnessed === bits) {
          // A hint only: any value is correct, a racing store just costs a longer scan.
          if (visited !== 0) Atomics.store(words, kSlabSearchHintField, word);
          return word * 32 + (31 - Math.clz32(lowest));
        }
        bits = witnessed;
      }
      word = word + 1 === this.bitmapWords ? 0 : word + 1;
    }
  }
}

function isValidShape(chunkSizeBytes: number, chunkCount: number): boolean {
  return (
    Number.isInteger(chunkSizeBytes) &&
    chunkSizeBytes >= 64 &&
    chunkSizeBytes <= SLAB_CHUNK_SIZE_MAX &&
    chunkSizeBytes % 64 === 0 &&
    Number.isInteger(chunkCount) &&
    chunkCount >= 1 &&
    chunkCount <= SLAB_CHUNK_COUNT_MAX &&
    chunkSizeBytes * chunkCount <= SLAB_DATA_BYTES_MAX
  );
}

/** Chunk data starts at the first 4096-byte boundary after the chain table and the bitmap. */
function dataOffsetFor(chunkCount: number): number {
  const tablesEndBytes = (kSlabTablesStart + chunkCount + Math.ceil(chunkCount / 32)) * 4;
  return Math.ceil(tablesEndBytes / 4096) * 4096;
}
